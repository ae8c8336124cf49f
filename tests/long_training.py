"""A demo training long enough to be interrupted several times, its uninterrupted reference, and the
checks that an interrupted run lost nothing (tests/test_slurm_wall_time.py, tests/test_local_interruptions.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import torch
import yaml
from demo_config import tiny_demo_config
from workflow_runner import REPO, plain_env, run_snakemake

from centerclip.training.attempts import TRAIN_LOG, read_attempts

RUN = "msrvtt9k_b32_meanP"
RUN_DIR = f"results/demo/runs/msrvtt/{RUN}/seed42"
TARGET = f"{RUN_DIR}/metrics.json"
N_TRAIN = 32  # in batches of 4: 8 steps per epoch


def prepare(work: Path, epochs_scale: float, env: dict, venv_bin: Path) -> int:
    """A tiny demo config training RUN for 5 x ``epochs_scale`` epochs in ``work``, its data and run.yaml
    made here (everything before rule train); returns the number of training steps."""
    cfg = tiny_demo_config(runs=(RUN,), n_train=N_TRAIN, n_test=4, captions_per_video=1)
    cfg["scale"]["epochs"] = epochs_scale
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    run_snakemake(TARGET, "--omit-from", "train", "--cores", "2", "-s", REPO / "Snakefile", "-d", work,
                  "--configfile", work / "config.yaml", env=env, venv_bin=venv_bin, timeout=300)
    return int(yaml.safe_load((work / RUN_DIR / "run.yaml").read_text())["train"]["epochs"]) * (N_TRAIN // 4)


def start_reference(work: Path, out: Path, env: dict, venv_bin: Path) -> subprocess.Popen:
    """The uninterrupted training of the same run.yaml, on one core, outside Snakemake."""
    return subprocess.Popen([str(venv_bin / "python"), "-m", "centerclip.training.train", "--run-config",
                             str(work / RUN_DIR / "run.yaml"), "--out-dir", str(out)], cwd=work,
                            env={**plain_env(env), "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def finish_reference(proc: subprocess.Popen, work: Path, out: Path, env: dict, venv_bin: Path) -> None:
    """Wait for :func:`start_reference`'s training, then evaluate it as the workflow's evaluate job does."""
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    subprocess.run([str(venv_bin / "python"), "-m", "centerclip.training.evaluate", "--checkpoint",
                    str(out / "checkpoint.pt"), "--out", str(out / "metrics.json")], cwd=work,
                   env={**plain_env(env), "OMP_NUM_THREADS": "1"}, check=True, capture_output=True)


def start_snakemake(work: Path, venv_bin: Path, env: dict | None, *args: str | Path) -> subprocess.Popen:
    """``<venv_bin>/snakemake TARGET *args`` on ``work`` in a plain shell, in the background; its output goes
    to ``work/snakemake-<n>.log``, numbered in start order (:func:`last_snakemake_log`)."""
    n = len(list(work.glob("snakemake-*.log"))) + 1
    cmd = [str(venv_bin / "snakemake"), TARGET, "-s", str(REPO / "Snakefile"), "-d", str(work), *map(str, args),
           "--configfile", str(work / "config.yaml")]
    log = open(work / f"snakemake-{n:02d}.log", "w")
    return subprocess.Popen(cmd, cwd=REPO, env=plain_env(env), stdout=log, stderr=subprocess.STDOUT, text=True)


def last_snakemake_log(work: Path) -> str:
    """The output of the Snakemake that :func:`start_snakemake` started last."""
    return sorted(work.glob("snakemake-*.log"))[-1].read_text()


def logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "train_log.jsonl"
    return [json.loads(x)["step"] for x in path.read_text().splitlines()] if path.exists() else []


def trained_steps_of_current_attempt(run_dir: Path) -> int:
    """Steps the latest attempt has logged since it resumed (0 before it started)."""
    attempts = read_attempts(run_dir)
    return len(logged_steps(run_dir)) - attempts[-1]["resumed_at_step"] if attempts else 0


def wait_for(what: str, condition, proc: subprocess.Popen, timeout: float = 300):
    """Poll ``condition`` until it returns something true; fail if ``proc`` (Snakemake) ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        assert proc.poll() is None, f"snakemake ended (rc {proc.returncode}) while waiting for {what}"
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def same_weights(a_path: Path, b_path: Path) -> None:
    """The two checkpoints hold bit-identical weights."""
    a = torch.load(a_path, weights_only=False)["model"]
    b = torch.load(b_path, weights_only=False)["model"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def assert_same_as_reference(run_dir: Path, reference: Path, steps: int) -> None:
    """The run's weights and test metrics equal the uninterrupted reference's; every step logged once."""
    same_weights(run_dir / "checkpoint.pt", reference / "checkpoint.pt")
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (run_dir, reference))
    assert (got["t2v"], got["v2t"]) == (want["t2v"], want["v2t"])
    assert logged_steps(run_dir) == list(range(steps))


def starts_and_stops(run_dir: Path) -> tuple[list[int], list[int]]:
    """The step each attempt resumed from, and each step a signal stopped an attempt after (train.log)."""
    starts = [a["resumed_at_step"] for a in read_attempts(run_dir)]
    stops = [int(n) for n in re.findall(r"stopped by SIG\w+ after step (\d+)", (run_dir / TRAIN_LOG).read_text())]
    return starts, stops
