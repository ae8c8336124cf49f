"""One writer per run folder: ``python -m centerclip.training.run_lock RUN_DIR -- COMMAND ...``.

The workflow starts every training and evaluation job through this wrapper. It takes the run folder's
lock file ``RUN_DIR/.run.lock`` (created exclusively; it names its holder: SLURM job id, host, pid and
the command), runs the command, passes SIGTERM / SIGUSR1 / SIGINT on to it, and removes the lock when
the command ends, returning its exit status. A second job for the same folder (e.g. Snakemake restarted
after its main process died while a training still ran, and submitting it again) waits until the
first one ends, then runs: a training resumes from the ``last.pt`` the first one left, so nothing is
lost and no two processes ever write the same run. A lock whose holder is gone (same host: its pid no
longer exists; another host: its SLURM job is no longer queued or running) is taken over.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = ".run.lock"
FORWARDED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
# squeue states of a job that still runs or will (anything else, or no line at all: gone)
_LIVE_STATES = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING",
                "STOPPED", "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}


class RunLockedError(RuntimeError):
    """The run folder is locked by a live holder and the caller chose not to wait."""


def holder_record(command: list[str] | None = None) -> dict:
    """Who takes the lock: host, pid, SLURM job id (None outside SLURM), the command and a token."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "command": " ".join(command or sys.argv), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "token": uuid.uuid4().hex}


def describe_holder(holder: dict) -> str:
    job = f"SLURM job {holder['slurm_job_id']}, " if holder.get("slurm_job_id") else ""
    return f"{job}host {holder.get('host')}, pid {holder.get('pid')} (since {holder.get('since')}): {holder.get('command')}"


def holder_alive(holder: dict) -> bool | None:
    """True / False when it can be told, None when not (another host without SLURM's squeue here)."""
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, another user's
            return True
        return True
    job = holder.get("slurm_job_id")
    if job and shutil.which("squeue"):
        out = subprocess.run(["squeue", "-h", "-j", str(job), "-o", "%T"], capture_output=True, text=True)
        states = {s.strip() for s in out.stdout.split()}
        return bool(states & _LIVE_STATES)
    return None


def _read_holder(path: Path) -> dict | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # being written this instant: read again
        return {}


def _try_create(path: Path, holder: dict) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(holder, f)
    return True


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, *, wait: bool = True, poll_seconds: float = 10.0,
             command: list[str] | None = None) -> Iterator[dict]:
    """Hold ``run_dir``'s lock for the ``with`` block; yields the holder record written into it.

    A live holder: wait (checking every ``poll_seconds``) or, with ``wait=False``, raise
    :class:`RunLockedError` naming it. A holder that is gone: its lock is moved aside and taken over.
    """
    path = Path(run_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    me = holder_record(command)
    announced = False
    while not _try_create(path, me):
        holder = _read_holder(path)
        if holder is None or holder == {}:
            time.sleep(0.05)
            continue
        alive = holder_alive(holder)
        if alive is False:
            stale = path.with_name(f"{LOCK_NAME}.stale-{holder.get('token', 'x')[:8]}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, stale)  # only one taker wins the rename; the other finds no file
            log.warning("%s: its holder is gone (%s); taken over (the old lock is %s)", path,
                        describe_holder(holder), stale.name)
            continue
        if not wait:
            raise RunLockedError(f"{run_dir} is in use by {describe_holder(holder)}; wait for it to end "
                                 f"(or, if no such process or job runs any more, delete {path})")
        if not announced:
            log.warning("%s is in use by %s; waiting for it to end (%s)", run_dir, describe_holder(holder),
                        "cannot tell from here whether it still runs: delete the lock file if it does not"
                        if alive is None else "checking every %gs" % poll_seconds)
            announced = True
        time.sleep(poll_seconds)
    try:
        yield me
    finally:
        if (_read_holder(path) or {}).get("token") == me["token"]:
            path.unlink()


def run_locked(run_dir: str | os.PathLike, command: list[str], poll_seconds: float = 10.0) -> int:
    """Run ``command`` holding ``run_dir``'s lock; SIGTERM / SIGUSR1 / SIGINT go on to its process group
    (so every rank torchrun started gets them); returns its exit status (128 + n if a signal ended it)."""
    received: list[int] = []
    previous = {s: signal.signal(s, lambda n, f: received.append(n)) for s in FORWARDED}  # none lost while waiting
    try:
        with run_lock(run_dir, poll_seconds=poll_seconds, command=command):
            if received:  # stopped while waiting for the lock: the command never started
                return 128 + received[0]
            child = subprocess.Popen(command, start_new_session=True)
            for s in FORWARDED:
                signal.signal(s, lambda n, f: os.killpg(child.pid, n))
            rc = child.wait()
            return 128 - rc if rc < 0 else rc
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="%(prog)s [--poll-seconds S] RUN_DIR -- COMMAND [ARG ...]")
    parser.add_argument("run_dir")
    parser.add_argument("--poll-seconds", type=float, default=10.0)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("give the command to run after --")
    cut = argv.index("--")
    args = parser.parse_args(argv[:cut])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s run_lock %(message)s", stream=sys.stderr)
    return run_locked(args.run_dir, argv[cut + 1:], args.poll_seconds)


if __name__ == "__main__":
    sys.exit(main())
