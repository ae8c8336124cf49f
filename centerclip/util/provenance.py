"""How a result was made: code version, packages, device. Recorded in every metrics file."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import torch

PACKAGES = ("centerclip", "torch", "numpy", "h5py", "decord", "pandas", "snakemake")


def git_commit(cwd: str | os.PathLike | None = None) -> str:
    """Commit of the working tree (``+dirty`` when modified), or ``unknown`` outside git."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (commit + ("+dirty" if dirty else "")) if commit else "unknown"


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_info(device: torch.device) -> dict[str, object]:
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "count": torch.cuda.device_count()}
    return {"type": device.type, "name": platform.processor() or platform.machine(),
            "count": 1, "threads": torch.get_num_threads()}


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def provenance(device: torch.device) -> dict[str, object]:
    return {
        "git_commit": git_commit(),
        "packages": package_versions(),
        "device": device_info(device),
        "host": platform.node(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
