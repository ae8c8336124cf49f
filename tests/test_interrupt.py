"""SIGTERM / SIGUSR1 stop a training at a step boundary: the resume state holds the finished step, the
job exits with status 75, and the resumed run ends with the weights of an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from long_training import logged_steps, same_weights
from run_settings import run_dict

from centerclip.training.attempts import NoProgress, read_attempts, record_attempt
from centerclip.training.interrupt import RESUMABLE_EXIT, Interrupted, StopSignals
from centerclip.training.settings import RunConfig
from centerclip.training.train import run
from centerclip.util import atomic


def test_a_signal_mid_step_finishes_the_step_then_stops_resumably(tiny_dataset, tmp_path, monkeypatch):
    """The signal arrives while step 2 (of 4 per epoch) runs: that step completes, last.pt holds step 3's
    start, nothing half-done is written; the rerun continues and matches an uninterrupted run bit for bit."""
    import centerclip.training.train as train

    signum = signal.SIGUSR1  # SLURM's warning before the wall time (the next test: SIGTERM)
    d = run_dict(tiny_dataset, epochs=2, batch_size=4, checkpoint_every_steps=0, eval_every_epoch=False)
    run(RunConfig.from_dict(d), tmp_path / "straight")

    real = train.lr_factor

    def signal_during_step_2(step, *args):
        if step == 2:
            os.kill(os.getpid(), signum)  # delivered now, before this step's forward and backward
        return real(step, *args)

    monkeypatch.setattr(train, "lr_factor", signal_during_step_2)
    with StopSignals() as stop, pytest.raises(Interrupted) as stopped:
        run(RunConfig.from_dict(d), tmp_path / "stopped", stop=stop)
    assert stopped.value.step == 3 and stopped.value.signal_name == signal.Signals(signum).name
    state = torch.load(tmp_path / "stopped" / "last.pt", weights_only=False)
    assert (state["epoch"], state["step_in_epoch"], state["step"]) == (0, 3, 3)
    assert logged_steps(tmp_path / "stopped") == [0, 1, 2]
    assert not (tmp_path / "stopped" / "checkpoint.pt").exists()
    assert signal.getsignal(signum) is not None and signal.getsignal(signum) != stop._handle  # handler restored

    monkeypatch.setattr(train, "lr_factor", real)
    summary = run(RunConfig.from_dict(d), tmp_path / "stopped", attempt=2)  # Snakemake's retry
    assert summary["resumed_at_step"] == 3
    assert [(a["attempt"], a["resumed_at_step"]) for a in read_attempts(tmp_path / "stopped")] == [(1, 0), (2, 3)]
    assert logged_steps(tmp_path / "stopped") == list(range(8))  # contiguous, no step twice
    same_weights(tmp_path / "straight" / "checkpoint.pt", tmp_path / "stopped" / "checkpoint.pt")


def test_a_signal_at_an_epochs_last_step_resumes_into_the_next_epoch(tiny_dataset, tmp_path, monkeypatch):
    """SIGTERM (scancel, preemption) during an epoch's last step: the resumed job starts the next epoch and
    first evaluates the finished one."""
    import centerclip.training.train as train

    d = run_dict(tiny_dataset, epochs=2, batch_size=4, checkpoint_every_steps=0, eval_every_epoch=True)
    real = train.lr_factor
    monkeypatch.setattr(train, "lr_factor", lambda step, *a: (os.kill(os.getpid(), signal.SIGTERM) if step == 3
                                                              else None) or real(step, *a))
    with StopSignals() as stop, pytest.raises(Interrupted):
        run(RunConfig.from_dict(d), tmp_path, stop=stop)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert (state["epoch"], state["step_in_epoch"], state["step"]) == (1, 0, 4)
    assert not (tmp_path / "metrics_epoch1.json").exists()  # the epoch's evaluation is the resumed job's
    monkeypatch.setattr(train, "lr_factor", real)
    run(RunConfig.from_dict(d), tmp_path)
    assert (tmp_path / "metrics_epoch1.json").exists() and (tmp_path / "metrics_epoch2.json").exists()


def test_a_retry_that_would_start_where_its_previous_attempt_started_stops(tiny_dataset, tmp_path):
    """Retries are bounded by progress: attempt 1 saved no step (it failed at set-up, or was killed before
    its first save), so Snakemake's automatic retry, attempt 2, refuses to repeat it and names the logs; a
    new Snakemake invocation (attempt 1 again) trains."""
    d = run_dict(tiny_dataset, epochs=1, batch_size=4, checkpoint_every_steps=0, eval_every_epoch=False)
    record_attempt(tmp_path, 1, 0)
    with pytest.raises(NoProgress) as refused:
        run(RunConfig.from_dict(d), tmp_path, attempt=2)
    message = str(refused.value)
    assert "attempt 1" in message and "step 0" in message and str(tmp_path / "train.log") in message
    assert not (tmp_path / "train_log.jsonl").exists() and not (tmp_path / "last.pt").exists()  # nothing trained
    assert [a["attempt"] for a in read_attempts(tmp_path)] == [1]

    # attempt 2 after an attempt 1 that resumed from another step is no repeat
    run(RunConfig.from_dict(d), tmp_path, attempt=1)
    assert (tmp_path / "checkpoint.pt").exists()
    assert [(a["attempt"], a["resumed_at_step"]) for a in read_attempts(tmp_path)] == [(1, 0), (1, 0)]


@pytest.mark.slow
def test_the_job_exits_75_on_sigterm_and_the_rerun_completes(tiny_dataset, tmp_path, venv_env):
    """The CLI as the workflow runs it, signalled from outside."""
    cfg = run_dict(tiny_dataset, epochs=6, checkpoint_every_steps=0, eval_every_epoch=False)
    atomic.write_yaml(cfg, tmp_path / "run.yaml")
    cmd = [sys.executable, "-m", "centerclip.training.train", "--run-config", str(tmp_path / "run.yaml"),
           "--out-dir", str(tmp_path / "run")]
    proc = subprocess.Popen(cmd + ["--attempt", "1"], env=venv_env, stderr=subprocess.PIPE, text=True)
    log_file, deadline = tmp_path / "run" / "train_log.jsonl", time.time() + 120
    while not (log_file.exists() and len(log_file.read_text().splitlines()) >= 3) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == RESUMABLE_EXIT, err[-2000:]
    assert "stopped by SIGTERM after step" in err
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert logged_steps(tmp_path / "run") == list(range(state["step"]))
    subprocess.run(cmd + ["--attempt", "2"], check=True, env=venv_env, capture_output=True)
    assert logged_steps(tmp_path / "run") == list(range(6 * 4))
    assert json.loads((tmp_path / "run" / "train_summary.json").read_text())["resumed_at_step"] == state["step"]
    # the run folder keeps both attempts' logs (Snakemake empties the job's own log before a retry)
    train_log = (tmp_path / "run" / "train.log").read_text()
    assert "attempt 1:" in train_log and "stopped by SIGTERM" in train_log and "attempt 2:" in train_log
    assert [a["resumed_at_step"] for a in read_attempts(tmp_path / "run")] == [0, state["step"]]
