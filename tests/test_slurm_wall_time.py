"""A training several times longer than its SLURM time limit, on the CI's real SLURM (.ci/slurm.sh), with
the user's survival settings from cluster/config.yaml: SLURM's `--signal` warning (here 30 s before a
2-minute limit: SLURM may send it up to 60 s early, so a 1-minute window could be warned at its start),
`preemptible-retries` for rule train, the training `exec`ed under the run lock.

One run goes through what a cluster does to a long training: its first job is `scancel`ed; the main
Snakemake process is killed (`kill -9`) while the next job trains and is started again at once
(`--unlock`, then `--rerun-incomplete`) while that orphaned job still runs; every other job is stopped by
the warning before its time limit and resubmitted. It must finish with the weights and test metrics of
an uninterrupted training of the same run.yaml (trained alongside, outside SLURM), every step logged
once, and each attempt resuming exactly where the one before it stopped: no step lost, and no second
job ever training beside the orphan (it would have resumed from the orphan's own starting step).
"""

import re
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from long_training import (RUN_DIR, TARGET, assert_same_as_reference, finish_reference, last_snakemake_log,
                           prepare, start_reference, start_snakemake, starts_and_stops,
                           trained_steps_of_current_attempt, wait_for)
from test_slurm import PROFILE, REPO, cluster_env, slurm  # noqa: F401 - fixtures
from workflow_runner import CLUSTER_VENV_BIN, run_snakemake

from centerclip.training.attempts import read_attempts

pytestmark = pytest.mark.slow

# 80 epochs of 8 steps, ~3.5 min on one core: warned 30-90 s into each 2-minute window, a job trains at
# most ~80 s (~260 steps), so after the cancelled job and the orphan at least one more window ends by the
# warning
EPOCHS_SCALE = 16.0
RUNTIME_MIN, WARNING_S = 2, 30


def wall_time_profile(tmp: Path) -> Path:
    """The CI profile with the user's survival settings (cluster/config.yaml), the training's time limit
    cut to RUNTIME_MIN minutes and the warning to WARNING_S seconds before it."""
    user = yaml.safe_load((REPO / "cluster" / "config.yaml").read_text())
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    signal_flag = user["set-resources"]["train"]["slurm_extra"]
    assert re.fullmatch(r"--signal=TERM@\d+", signal_flag), signal_flag
    profile["preemptible-rules"] = user["preemptible-rules"]
    profile["preemptible-retries"] = user["preemptible-retries"]
    warning = signal_flag.split("@")[0] + f"@{WARNING_S}"
    profile["set-resources"]["train"].update(runtime=RUNTIME_MIN, slurm_extra=warning)
    folder = tmp / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def train_jobs(env) -> dict[str, tuple[str, int]]:
    """{SLURM job id: (state, seconds it ran)} of every training job SLURM knows (MinJobAge keeps finished
    ones)."""
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T|%M|%k"], env=env,
                         capture_output=True, text=True, check=True).stdout
    jobs = {}
    for line in out.splitlines():
        job, state, elapsed, comment = line.strip().split("|", 3)
        if comment.startswith("rule_train_"):
            parts = [int(x) for x in re.split(r"[:-]", elapsed)]
            jobs[job] = (state, sum(n * 60**i for i, n in enumerate(reversed(parts))))
    return jobs


def training_job(run_dir: Path, env, not_job: str) -> str | None:
    """The SLURM job id of the attempt that runs now, once it has trained 3 steps, unless it is ``not_job``."""
    attempts = read_attempts(run_dir)
    if not attempts or trained_steps_of_current_attempt(run_dir) < 3:
        return None
    job = attempts[-1]["slurm_job_id"]
    return job if job != not_job and train_jobs(env).get(job, ("",))[0] == "RUNNING" else None


def test_a_training_longer_than_its_wall_time_survives_scancel_and_a_killed_snakemake(slurm, cluster_env,
                                                                                     tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    steps = prepare(work, EPOCHS_SCALE, cluster_env, CLUSTER_VENV_BIN)  # data and run.yaml on this machine
    run_dir, reference = work / RUN_DIR, tmp_path / "reference"
    straight = start_reference(work, reference, cluster_env, CLUSTER_VENV_BIN)  # on the other core meanwhile
    profile = wall_time_profile(tmp_path)

    earlier = set(train_jobs(cluster_env))  # jobs of other tests that SLURM still lists
    proc = start_snakemake(work, CLUSTER_VENV_BIN, cluster_env, "--profile", profile)
    # 1. scancel the first training job once it has trained a few steps
    first = wait_for("the first training job to train", lambda: training_job(run_dir, cluster_env, ""), proc)
    subprocess.run(["scancel", first], env=cluster_env, check=True)
    # 2. kill -9 the main Snakemake process while the resubmitted job trains, and start it again at once
    second = wait_for("the resubmitted training job to train", lambda: training_job(run_dir, cluster_env, first),
                      proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert train_jobs(cluster_env)[second][0] == "RUNNING"  # orphaned, still training
    run_snakemake(TARGET, "--profile", profile, "-s", REPO / "Snakefile", "-d", work, "--unlock", "--configfile",
                  work / "config.yaml", env=cluster_env, venv_bin=CLUSTER_VENV_BIN, timeout=120)
    proc = start_snakemake(work, CLUSTER_VENV_BIN, cluster_env, "--profile", profile, "--rerun-incomplete")
    assert proc.wait(timeout=900) == 0, last_snakemake_log(work)[-5000:]
    finish_reference(straight, work, reference, cluster_env, CLUSTER_VENV_BIN)

    assert_same_as_reference(run_dir, reference, steps)
    starts, stops = starts_and_stops(run_dir)
    assert starts[0] == 0 and starts[1:] == stops and stops == sorted(set(stops)), (starts, stops)
    jobs = [a["slurm_job_id"] for a in read_attempts(run_dir)]
    states = {j: v for j, v in train_jobs(cluster_env).items() if j not in earlier}
    assert len(set(jobs)) == len(jobs) and jobs[:2] == [first, second], (jobs, states)
    assert states[first][0] == "CANCELLED" and states[jobs[-1]][0] == "COMPLETED", states
    # every other training job, the orphan included, ended before its time limit: stopped by the warning
    # (jobs that were warned before they began to train, e.g. while waiting for the lock, are among them)
    assert all(state == "FAILED" and ran < 60 * RUNTIME_MIN for j, (state, ran) in states.items()
               if j not in (first, jobs[-1])), states
    assert len(stops) >= 3, (starts, stops, states)  # scancel, the orphan's warning, at least one more warning
