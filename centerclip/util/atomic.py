"""Atomic writes: a file appears complete or not at all, so a killed job never leaves one that looks done.

Every writer goes through :func:`path`: it hands out a temporary name beside the destination (same
filesystem, so the final rename is atomic) and renames it onto the destination only when the writer
returns. Importing this module is cheap on purpose (no torch, no yaml at import time): small
workflow scripts and the data tools use it too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_name(dst: str | os.PathLike, keep_suffix: bool = True, suffix: str | None = None) -> Path:
    """The temporary name used for ``dst``: ``.<name>.tmp<pid>[<suffix>]`` in the same folder.

    Hidden and never ending in the bare destination name, so no glob for outputs mistakes it for one;
    the pid keeps two processes writing the same file apart. The destination's suffix is repeated at
    the end because some writers choose the format from it (matplotlib, pandas' compression, ffmpeg).
    """
    dst = Path(dst)
    if suffix is None:  # ``suffix``: another ending, for a writer that needs one where dst has none
        suffix = dst.suffix if keep_suffix else ""
    return dst.with_name(f".{dst.name}.tmp{os.getpid()}{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(dst: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of ``dst`` left by writers that were killed outright (SIGKILL, a node
    lost): their pid no longer runs on this machine. A killed frame-cache build would otherwise leave a
    file as large as the cache behind on every retry. Returns what was removed."""
    dst = Path(dst)
    removed = []
    for tmp in dst.parent.glob(f".{dst.name}.tmp*"):
        digits = tmp.name[len(f".{dst.name}.tmp"):].split(".")[0]
        if digits.isdigit() and int(digits) != os.getpid() and not _alive(int(digits)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


@contextmanager
def path(dst: str | os.PathLike, keep_suffix: bool = True, suffix: str | None = None,
         clean_stale: bool = True) -> Iterator[Path]:
    """``with path(dst) as tmp: writer(tmp)``: ``dst`` gets what the writer wrote, or stays as it was.

    Parent folders are created. On success the temporary file is renamed onto ``dst``; on any
    exception (KeyboardInterrupt included) it is removed and the exception propagates, leaving an
    existing ``dst`` untouched. ``keep_suffix``, ``suffix``: see :func:`temporary_name`. ``clean_stale``:
    first remove the temporaries of ``dst`` that killed writers left (:func:`remove_stale_temporaries`, one
    listing of the folder); off for writers that put thousands of small files into one folder, where a
    listing per file would cost more than the orphans they might leave.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if clean_stale:
        remove_stale_temporaries(dst)
    tmp = temporary_name(dst, keep_suffix, suffix)
    try:
        yield tmp
        os.replace(tmp, dst)
    finally:
        # after a successful replace there is nothing left to remove
        tmp.unlink(missing_ok=True)


def write_text(text: str, dst: str | os.PathLike, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``dst`` atomically (UTF-8 by default, whatever the locale)."""
    with path(dst) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_bytes(data: bytes, dst: str | os.PathLike) -> None:
    """Write ``data`` to ``dst`` atomically."""
    with path(dst) as tmp:
        tmp.write_bytes(data)


def write_json(obj: Any, dst: str | os.PathLike) -> None:
    """Write ``obj`` as indented JSON with a final newline, atomically."""
    write_text(json.dumps(obj, indent=2) + "\n", dst)


def write_yaml(data: Any, dst: str | os.PathLike) -> None:
    """Write ``data`` as YAML, keys in their given order (the order a reader of run.yaml expects)."""
    import yaml  # here, not at the top: most users of this module never write YAML

    write_text(yaml.safe_dump(data, sort_keys=False), dst)


def save_torch(obj: Any, dst: str | os.PathLike) -> None:
    """``torch.save(obj, dst)`` atomically.

    The temporary name does not repeat the suffix: torch names the folder inside its zip archive
    after the file name minus its last suffix, so ``.<name>.tmp<pid>`` gives the same bytes in every
    process, while ``.<name>.tmp<pid>.pt`` would put the pid into the file.
    """
    import torch  # here, not at the top: importing torch costs seconds that text writers must not pay

    with path(dst, keep_suffix=False) as tmp:
        torch.save(obj, tmp)
