"""A run's training attempts, and the bound on automatic retries.

On a cluster a run longer than one wall-time window is finished by several jobs: each is stopped at a
step boundary before its wall time (:mod:`~centerclip.training.interrupt`), and Snakemake submits the
next attempt, which resumes from ``last.pt``. Retries must not go on when an attempt achieves nothing
(a job that fails at set-up, or that is killed before its first save every time): each attempt appends
one line to ``DIR/attempts.jsonl`` — Snakemake's attempt number, the step it resumed from, where it ran —
and an automatic retry (attempt 2, 3, ...) that would resume from the same step as the attempt before
it stops at once with :class:`NoProgress`, naming the run's ``train.log``. That file keeps the log of
every attempt (Snakemake empties a job's own log before each attempt). A new Snakemake invocation
starts again at attempt 1 and is not checked: it is the user's decision to try again.
"""

from __future__ import annotations

import json
from pathlib import Path

from centerclip.training.run_lock import holder_record
from centerclip.training.step import TrainingError
from centerclip.util import atomic

ATTEMPTS_FILE = "attempts.jsonl"
#: Every attempt's log lines, appended (the training CLI adds a log handler for it).
TRAIN_LOG = "train.log"


class NoProgress(TrainingError):
    """An automatic retry would resume from the step its previous attempt resumed from."""


def read_attempts(out_dir: Path) -> list[dict]:
    """The attempts recorded in ``out_dir/attempts.jsonl``, oldest first ([] when none)."""
    path = out_dir / ATTEMPTS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def check_progress(out_dir: Path, attempt: int, step: int) -> None:
    """Raise :class:`NoProgress` when ``attempt`` (Snakemake's attempt number, 1 for a first try) is an
    automatic retry and the previous attempt resumed from the same ``step``: no step was saved in between."""
    if attempt <= 1:
        return
    previous = read_attempts(out_dir)
    if not previous or previous[-1].get("attempt") != attempt - 1 or previous[-1].get("resumed_at_step") != step:
        return
    last = previous[-1]
    where = f"SLURM job {last['slurm_job_id']} on {last['host']}" if last.get("slurm_job_id") else last.get("host")
    raise NoProgress(
        f"no progress: attempt {attempt - 1} ({where}) also started at step {step} and saved no later step, "
        f"so attempt {attempt} stops instead of repeating it. Read {out_dir / TRAIN_LOG} (every attempt's log) "
        f"and {out_dir / ATTEMPTS_FILE}; fix the cause (or, when the jobs are killed before they can save, give "
        "the rule a longer runtime or save more often with train.checkpoint_every_steps), then run Snakemake "
        "again: a new invocation starts at attempt 1")


def record_attempt(out_dir: Path, attempt: int, step: int) -> None:
    """Append this attempt's line to ``out_dir/attempts.jsonl`` (rank 0 only; rewritten atomically)."""
    holder = holder_record()
    line = {"attempt": attempt, "resumed_at_step": step, "since": holder["since"], "host": holder["host"],
            "pid": holder["pid"], "slurm_job_id": holder["slurm_job_id"]}
    lines = [json.dumps(a) for a in read_attempts(out_dir)] + [json.dumps(line)]
    atomic.write_text("".join(x + "\n" for x in lines), out_dir / ATTEMPTS_FILE)
