"""Training-free runs: another run's finished weights, evaluated with this run's token reduction.

``python -m centerclip.training.training_free --run-config DIR/run.yaml --source SRC/checkpoint.pt --out-dir DIR``

A training-free run (an experiment row with ``training_free: <experiment>``) is not trained: its
``checkpoint.pt`` holds the weights of that experiment's finished ``checkpoint.pt`` (the same seed) with this
run's own config, so the evaluate job applies this run's method (e.g. CenterCLIP's clustering on a meanP
model) at evaluation only. The checkpoint's summary, and ``train_summary.json`` beside it, say so
(``training_free``: the source run and its checkpoint's sha256) and carry over how the weights were trained
(epochs, global batch, the weights training started from), which the tables compare with the paper's.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from centerclip.data.digests import file_sha256
from centerclip.training.checkpoint import from_checkpoint, read_checkpoint
from centerclip.training.identity import run_identity
from centerclip.util import atomic

log = logging.getLogger("centerclip.training.training_free")

#: Summary keys copied from the source run: how its weights were trained (the tables compare epochs, global
#: batch and weights with the paper's; the evaluate job copies the rest into metrics.json's provenance).
CARRIED_OVER = ("epochs", "global_batch", "weights", "seed", "world_size", "device_count", "grad_accum",
                "micro_batch_per_device", "precision", "train_pairs", "train_videos_left_out", "provenance")

#: run.yaml keys a training-free run must share with its source run: the weights fit only these.
SHARED = ("dataset", "backbone")


def _check_source(run_config: dict, source: dict, where: str) -> str:
    """The source run's id; ValueError (``where`` names both files) unless ``source`` (a read checkpoint) is
    the trained run that ``run_config["training_free"]`` names, with the same dataset, backbone, seed and
    evaluation frames."""
    named = (run_config.get("training_free") or {}).get("run_id")
    if not named:
        raise ValueError(f"{where}: the run config is not a training-free run's (no training_free: {{from, run_id}})")
    found = source["run_config"].get("run_id")
    if found != named:
        raise ValueError(f"{where}: the source checkpoint is run {found!r}, but the run config names {named!r}")
    if (source.get("summary") or {}).get("training_free"):
        raise ValueError(f"{where}: the source checkpoint is itself training-free; give a trained run's checkpoint")
    pairs = [(k, run_config.get(k), source["run_config"].get(k)) for k in SHARED]
    pairs += [(f"{s}.{k}", run_config[s][k], source["run_config"][s][k])
              for s, k in (("train", "seed"), ("eval", "num_frames"))]
    for key, ours, theirs in pairs:
        if ours != theirs:
            raise ValueError(f"{where}: {key} is {ours!r} in the run config but {theirs!r} in the source run")
    return found


def training_free_checkpoint(run_config: dict, source: dict, source_sha256: str) -> dict:
    """The checkpoint dict of a training-free run: ``source``'s weights (``model``; a read checkpoint, its
    ``path`` included), ``run_config`` (this run's run.yaml) and a summary saying what it is.

    The summary's ``run_identity`` is that of this run's config on the source checkpoint's weights: it differs
    from the source run's (another config), so nothing resumes or keeps one run's files for the other.

    Raises:
        ValueError: ``source`` is not the trained run ``run_config`` names (the message names both files).
    """
    where = f"{run_config.get('run_id', 'run config')} from {source.get('path', 'source checkpoint')}"
    source_run = _check_source(run_config, source, where)
    summary = source.get("summary") or {}
    new_summary = {
        "run_id": run_config["run_id"],
        "training_free": {"from_run": source_run, "from": run_config["training_free"]["from"],
                          "checkpoint": str(source.get("path", "")), "checkpoint_sha256": source_sha256,
                          "source_run_identity": summary.get("run_identity")},
        "steps": 0,
        "run_identity": run_identity(run_config, source_sha256),
        **{k: summary[k] for k in CARRIED_OVER if k in summary},
        "epoch_metrics": [],  # the source's per-epoch numbers are of its own method, not this run's
    }
    checkpoint = {"model": source["model"], "run_config": run_config, "summary": new_summary}
    try:  # the evaluate job must be able to rebuild it: this run's method on the source's CLIP
        from_checkpoint({**checkpoint, "path": where})
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: this run's model cannot be built on the source's weights ({exc})") from None
    return checkpoint


def write_training_free(run_yaml: str | Path, source_path: str | Path, out_dir: str | Path) -> dict:
    """Write ``out_dir``/checkpoint.pt and train_summary.json of the training-free run ``run_yaml`` from the
    finished ``source_path`` (checkpoint.pt of the run it names), each atomically; returns the summary.

    Raises:
        ValueError: an unreadable run config or source checkpoint, or a source of another run.
    """
    try:
        run_config = yaml.safe_load(Path(run_yaml).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{run_yaml}: cannot read the run config ({exc})") from None
    if not isinstance(run_config, dict):
        raise ValueError(f"{run_yaml}: not a run config (expected a mapping)")
    source = read_checkpoint(source_path)
    try:
        checkpoint = training_free_checkpoint(run_config, source, file_sha256(source_path))
    except ValueError as exc:
        raise ValueError(f"{run_yaml}: {exc}") from None
    out_dir = Path(out_dir)
    atomic.save_torch(checkpoint, out_dir / "checkpoint.pt")
    atomic.write_json(checkpoint["summary"], out_dir / "train_summary.json")
    return checkpoint["summary"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-config", required=True, help="the training-free run's run.yaml")
    parser.add_argument("--source", required=True, help="checkpoint.pt of the run it names (training_free.run_id)")
    parser.add_argument("--out-dir", required=True, help="the run's folder: checkpoint.pt and train_summary.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        summary = write_training_free(args.run_config, args.source, args.out_dir)
    except ValueError as exc:
        log.error("%s", exc)
        return 1
    log.info("%s: the weights of %s (sha256 %s), not trained", summary["run_id"],
             summary["training_free"]["from_run"], summary["training_free"]["checkpoint_sha256"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
