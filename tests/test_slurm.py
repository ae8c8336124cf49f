"""The workflow through a real SLURM: a single-node cluster from Debian's packages (.ci/slurm.sh), the
slurm executor plugin from the `[cluster]` extra, the CI profile (.ci/slurm-profile). Every job of one
shrunk training run goes through sbatch.

The plugin lives in its own venv (.venv-cluster, `make cluster-setup`), not in .venv: with the plugin
installed, every snakemake start on a machine that has the slurm client but no running controller
waits ~10 s, and the rest of the suite starts snakemake often.

Skipped (with a warning, and the reason in pytest's summary) only where SLURM cannot run: not root,
the packages missing and not installable, or another SLURM already running on the machine
(.ci/slurm.sh exits 77). Anything else that goes wrong fails the test.
"""

import fcntl
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from demo_config import tiny_demo_config
from workflow_runner import CLUSTER_VENV_BIN, plain_env, run_snakemake

REPO = Path(__file__).resolve().parent.parent
SLURM_SH = REPO / ".ci" / "slurm.sh"
PROFILE = REPO / ".ci" / "slurm-profile"
CANNOT_RUN = 77  # .ci/slurm.sh: SLURM cannot run on this machine
SLURM_CI_DIR = Path("/tmp/slurm-ci")  # .ci/slurm.sh's default: config, state, logs
SLURM_ENV = {**os.environ, "SLURM_CI_DIR": str(SLURM_CI_DIR)}
TARGET = "results/demo/runs/msrvtt/msrvtt9k_b32_meanP/seed42/metrics.json"
# every job of the target goes through sbatch, but run_yaml, which is a localrule (it only writes run.yaml)
EXPECTED_JOBS = {"acquire": 1, "pretrain_backbone": 1, "manifest": 1, "compress_shard": 2, "frame_cache": 1,
                 "train": 1, "evaluate": 1}

pytestmark = pytest.mark.slow


def skip_loudly(reason):
    message = f"SLURM TEST SKIPPED: {reason}"
    print(f"\n*** {message} ***", file=sys.__stderr__, flush=True)
    warnings.warn(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def slurm():
    # one CI cluster per machine: concurrent test runs take turns
    lock = open(f"{SLURM_CI_DIR}.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield from _slurm_up_down()
    finally:
        lock.close()


def _slurm_up_down():
    proc = subprocess.run([str(SLURM_SH), "up"], env=SLURM_ENV, capture_output=True, text=True, timeout=600)
    if proc.returncode == CANNOT_RUN:
        skip_loudly(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, f".ci/slurm.sh up failed:\n{proc.stdout}\n{proc.stderr}"
    try:
        yield
    finally:
        subprocess.run([str(SLURM_SH), "down"], env=SLURM_ENV, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cluster_env(slurm):  # under the lock of `slurm`: make is not safe to run twice at once
    """.venv-cluster (the package with the `[cluster]` extra), built or refreshed by make."""
    proc = subprocess.run(["make", "-s", "-C", str(REPO), "cluster-setup"], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, f"make cluster-setup failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    # a plain shell: no venv on PATH; snakemake is started by its full path and every job must still run
    # the venv's Python (the executor starts jobs with the interpreter snakemake runs under)
    return plain_env(SLURM_ENV)


def completed_jobs_by_rule(slurm_ids, env):
    """{rule: number of jobs} of the SLURM jobs ``slurm_ids``, each asserted COMPLETED (squeue keeps
    finished jobs for MinJobAge, 3600 s in .ci/slurm.sh; there is no accounting database for sacct)."""
    squeue = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%i|%T|%k", "--jobs",
                             ",".join(slurm_ids)], env=env, capture_output=True, text=True, check=True).stdout
    seen = {}
    for line in squeue.splitlines():
        _, state, comment = line.strip().split("|", 2)
        assert state == "COMPLETED", line
        rule = re.match(r"rule_(\w+?)(_wildcards_|$)", comment).group(1)
        seen[rule] = seen.get(rule, 0) + 1
    return seen


def test_demo_run_goes_through_sbatch(slurm, cluster_env, tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_demo_config(captions_per_video=1)))

    # the target first: --configfile takes several values
    proc = run_snakemake(TARGET, "--profile", PROFILE, "-s", REPO / "Snakefile", "-d", tmp_path, "--configfile",
                         tmp_path / "config.yaml", env=cluster_env, venv_bin=CLUSTER_VENV_BIN, timeout=600)
    out = proc.stdout + proc.stderr
    metrics = tmp_path / TARGET
    assert metrics.exists()

    # every job was submitted with sbatch: one SLURM job id per Snakemake job
    slurm_ids = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(slurm_ids) == sum(EXPECTED_JOBS.values()) == len(set(slurm_ids)), out[-6000:]
    # ... and SLURM ran them
    assert completed_jobs_by_rule(slurm_ids, cluster_env) == EXPECTED_JOBS
    # the plugin's SLURM log of the training job (kept by the CI profile)
    train_logs = list((tmp_path / ".snakemake" / "slurm_logs" / "rule_train").rglob("*.log"))
    assert len(train_logs) == 1, train_logs

    # the user-facing profile (cluster/config.yaml) is valid for this snakemake + plugin: every key parses
    # and the run starts with the real slurm executor (with nothing left to submit, no account is needed)
    proc = run_snakemake(TARGET, "--profile", "cluster", "-s", REPO / "Snakefile", "-d", tmp_path, "--configfile",
                         tmp_path / "config.yaml", env=cluster_env, venv_bin=CLUSTER_VENV_BIN, timeout=120,
                         check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "SLURM run ID" in out and "Nothing to be done" in out, out[-3000:]
