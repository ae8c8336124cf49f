"""Atomic writes: a file appears complete or not at all, so a killed job never leaves one that looks done."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def _write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` on a temporary name beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    _write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_json(obj: Any, path: str | os.PathLike) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def write_text(text: str, path: str | os.PathLike) -> None:
    _write_atomic(path, lambda tmp: tmp.write_text(text))
