"""One writer per run folder: a second job waits for (or refuses) the live holder, named in the message;
a lock whose holder is gone is taken over; the wrapped command gets the scheduler's signals."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from centerclip.training.run_lock import LOCK_NAME, RunLockedError, holder_alive, run_lock

WRAP = [sys.executable, "-m", "centerclip.training.run_lock"]


def wait_for(path, timeout=30.0):
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_a_live_holder_is_named_and_the_lock_removed_after(tmp_path):
    holder = subprocess.Popen(WRAP + [str(tmp_path), "--", sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        wait_for(tmp_path / LOCK_NAME)
        with pytest.raises(RunLockedError) as refused:
            with run_lock(tmp_path, wait=False):
                pass
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and "time.sleep(30)" in message
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    assert not (tmp_path / LOCK_NAME).exists()  # released by its holder on the way out


def test_a_second_job_waits_for_the_first_and_never_overlaps(tmp_path):
    """The first writes 'first' after a while; the second, started meanwhile, must see it when it runs."""
    first = subprocess.Popen(WRAP + [str(tmp_path), "--", sys.executable, "-c",
                                     "import time, pathlib; time.sleep(1.5); pathlib.Path('first').write_text('done')"],
                             cwd=tmp_path)
    wait_for(tmp_path / LOCK_NAME)
    second = subprocess.run(WRAP + [str(tmp_path), "--poll-seconds", "0.1", "--", sys.executable, "-c",
                                    "import pathlib, sys; sys.exit(0 if pathlib.Path('first').exists() else 3)"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert first.wait(timeout=30) == 0
    assert second.returncode == 0, second.stderr
    assert f"pid {first.pid}" in second.stderr and "waiting for it to end" in second.stderr


def test_a_lock_whose_holder_is_gone_is_taken_over(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = {"host": socket.gethostname(), "pid": int(gone.stdout), "slurm_job_id": None, "command": "train (killed)",
            "since": "2026-01-01T00:00:00", "token": "0123456789abcdef"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(dead))
    assert holder_alive(dead) is False
    with run_lock(tmp_path, wait=False) as me:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["token"] == me["token"]
    assert json.loads((tmp_path / f"{LOCK_NAME}.stale-01234567").read_text()) == dead  # kept for the record
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_holder_on_another_host_without_squeue_counts_as_live(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue
    remote = {"host": "gpu-node-17", "pid": 1, "slurm_job_id": "4242", "command": "train", "since": "x", "token": "t"}
    assert holder_alive(remote) is None
    (tmp_path / LOCK_NAME).write_text(json.dumps(remote))
    with pytest.raises(RunLockedError, match="SLURM job 4242, host gpu-node-17"):
        with run_lock(tmp_path, wait=False):
            pass


def test_signals_reach_the_command_and_its_status_comes_back(tmp_path):
    """SIGUSR1 to the wrapper (SLURM's warning) reaches the command, which exits 75 as training does."""
    script = ("import signal, sys, time, pathlib\n"
              "signal.signal(signal.SIGUSR1, lambda n, f: sys.exit(75))\n"
              "pathlib.Path('ready').write_text('')\n"
              "time.sleep(60)\n")
    wrapper = subprocess.Popen(WRAP + [str(tmp_path), "--", sys.executable, "-c", script], cwd=tmp_path)
    wait_for(tmp_path / "ready")
    os.kill(wrapper.pid, signal.SIGUSR1)
    assert wrapper.wait(timeout=30) == 75
    assert not (tmp_path / LOCK_NAME).exists()
