"""A long training interrupted on a laptop (the local executor, as `make demo` runs it): SIGTERM to the
training process, then a rerun; then, during that rerun, the main Snakemake process killed (`kill -9`)
and `snakemake --unlock` and `--rerun-incomplete` started at once while the orphaned training process
still runs. The run must end with the weights and test metrics of an uninterrupted training of the
same run.yaml, every step logged once, and each attempt resuming exactly where the one before it stopped
or finished: the job the restarted Snakemake started waited for the orphan instead of training beside it.
"""

import json
import signal
import subprocess
from pathlib import Path

import pytest
from long_training import (RUN, RUN_DIR, TARGET, assert_same_as_reference, finish_reference, last_snakemake_log,
                           prepare, start_reference, start_snakemake, starts_and_stops,
                           trained_steps_of_current_attempt, wait_for)
from workflow_runner import REPO, VENV_BIN, run_snakemake

from centerclip.training.attempts import read_attempts
from centerclip.training.interrupt import RESUMABLE_EXIT
from centerclip.training.run_lock import LOCK_NAME

pytestmark = pytest.mark.slow

EPOCHS_SCALE = 4.0  # 20 epochs of 8 steps, ~1 min on one core


def training_pid(run_dir: Path) -> int:
    """The training process: the child of the run lock's holder."""
    holder = json.loads((run_dir / LOCK_NAME).read_text())
    children = subprocess.run(["pgrep", "-P", str(holder["pid"])], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children
    return int(children[0])


def alive(pid: int) -> bool:
    return subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip() \
        not in ("", "Z")


def test_sigterm_then_a_killed_snakemake_restarted_at_once_lose_nothing(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    steps = prepare(work, EPOCHS_SCALE, None, VENV_BIN)
    run_dir, reference = work / RUN_DIR, tmp_path / "reference"
    straight = start_reference(work, reference, None, VENV_BIN)  # on the other core meanwhile

    # 1. SIGTERM to the training process: it stops after its step, exits 75, and Snakemake reports the job
    proc = start_snakemake(work, VENV_BIN, None, "--cores", "1")
    wait_for("the training to train", lambda: trained_steps_of_current_attempt(run_dir) >= 3, proc)
    subprocess.run(["kill", "-TERM", str(training_pid(run_dir))], check=True)
    assert proc.wait(timeout=120) != 0
    log = last_snakemake_log(work)
    assert f"returned non-zero exit status {RESUMABLE_EXIT}." in log, log[-3000:]

    # 2. the rerun; its main process killed while it trains, restarted at once beside the orphan
    proc = start_snakemake(work, VENV_BIN, None, "--cores", "1")
    wait_for("the rerun to train", lambda: len(read_attempts(run_dir)) == 2
             and trained_steps_of_current_attempt(run_dir) >= 3, proc)
    orphan, holder = training_pid(run_dir), json.loads((run_dir / LOCK_NAME).read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert alive(orphan)
    run_snakemake(TARGET, "--cores", "1", "-s", REPO / "Snakefile", "-d", work, "--unlock", "--configfile",
                  work / "config.yaml", timeout=120)
    proc = start_snakemake(work, VENV_BIN, None, "--cores", "1", "--rerun-incomplete")
    assert proc.wait(timeout=600) == 0, last_snakemake_log(work)[-5000:]
    assert not alive(orphan)
    job_log = (work / "results" / "demo" / "logs" / "train" / "msrvtt" / RUN / "seed42.log")
    assert f"is in use by host {holder['host']}, pid {holder['pid']} " in job_log.read_text()  # it waited
    finish_reference(straight, work, reference, None, VENV_BIN)

    assert_same_as_reference(run_dir, reference, steps)
    starts, stops = starts_and_stops(run_dir)
    # attempt 1 stopped by SIGTERM; the orphan trained to the end; the restarted job resumed after it
    # (at the last step: nothing left to train) instead of beside it from the orphan's starting step
    assert starts == [0, stops[0], steps] and len(stops) == 1 and 0 < stops[0] < steps, (starts, stops)
