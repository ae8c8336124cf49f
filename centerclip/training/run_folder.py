"""A run folder's finished checkpoint is never destroyed silently.

Snakemake deletes a job's old outputs before it starts the job, and its ``protected()`` flag is checked
with ``os.access``, which always passes for root (CI, containers, single-user GPU boxes). The workflow
therefore runs :func:`keep_finished_checkpoint` right before any training that would replace a
``checkpoint.pt``: when the run's settings changed since that checkpoint was trained, the old run is
moved into ``superseded/<time>/`` beside it and training goes on; when the settings are the same (a newer
input file, ``--forcerun``), it stops and says how to keep the checkpoint or retrain it on purpose.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

#: Files of a finished run that belong to the checkpoint they describe.
RUN_RESULTS = ("checkpoint.pt", "train_summary.json", "metrics.json", "last.pt", "train_log.jsonl",
               "attempts.jsonl")
# not train.log: the training job appends to it while it sets a run aside, and it keeps saying so


class FinishedCheckpointError(RuntimeError):
    """A training would replace a finished checkpoint of the same settings."""


def set_aside(out_dir: str | os.PathLike, names: list[str]) -> Path | None:
    """Move the files ``names`` (those that exist) of ``out_dir`` into ``out_dir/superseded/<UTC time>/``
    by renaming (nothing is copied or deleted); return that folder, or None when none existed."""
    out_dir = Path(out_dir)
    present = [n for n in names if (out_dir / n).exists()]
    if not present:
        return None
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    dest = out_dir / "superseded" / stamp
    n = 1
    while dest.exists():  # two set-asides within one second
        n += 1
        dest = out_dir / "superseded" / f"{stamp}-{n}"
    dest.mkdir(parents=True)
    for name in present:
        os.replace(out_dir / name, dest / name)
    return dest


def run_files(out_dir: str | os.PathLike) -> list[str]:
    """Names of the files of ``out_dir`` that one training (and its evaluation) wrote."""
    return list(RUN_RESULTS) + sorted(p.name for p in Path(out_dir).glob("metrics_epoch*.json"))


def keep_finished_checkpoint(out_dir: str | os.PathLike, run_yaml: str | os.PathLike) -> Path | None:
    """Guard ``out_dir/checkpoint.pt`` before a training that would replace it.

    No checkpoint: nothing to do (None). A checkpoint trained with other settings than ``run_yaml``'s
    (an edited experiment): move it and its results into ``superseded/`` and return that folder. The
    same settings: raise :class:`FinishedCheckpointError`, leaving everything in place.
    """
    from centerclip.training.identity import checkpoint_identity, config_identity  # torch: only when there is a checkpoint

    out_dir = Path(out_dir)
    checkpoint = out_dir / "checkpoint.pt"
    if not checkpoint.is_file():
        return None
    with open(run_yaml) as f:
        new = config_identity(yaml.safe_load(f))
    if checkpoint_identity(checkpoint) != new:
        return set_aside(out_dir, run_files(out_dir))
    summary = out_dir / "train_summary.json"
    raise FinishedCheckpointError(
        f"{checkpoint} is a finished training with exactly the settings of {run_yaml}, and this workflow "
        "was about to train it again (an input is newer than it - e.g. a rebuilt frames.h5 or manifest - or "
        "--forcerun asked for it). Nothing was deleted. To keep it, mark it up to date: "
        f"`snakemake --touch {checkpoint} {summary}` (with the same --configfile/--profile). To retrain it on "
        f"purpose, move or delete it first: `rm -f {checkpoint}`.")
