"""Locate the ffmpeg binary the pipeline uses.

Order: ``$CENTERCLIP_FFMPEG`` if set, the system ``ffmpeg`` on PATH, then the static
binary shipped in the ``imageio-ffmpeg`` wheel (always installed with this package), so a
machine without a system ffmpeg still works.
"""

from __future__ import annotations

import functools
import os
import shutil


class FFmpegNotFound(RuntimeError):
    pass


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg executable to run."""
    override = os.environ.get("CENTERCLIP_FFMPEG")
    if override:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise FFmpegNotFound(f"CENTERCLIP_FFMPEG={override!r} is not an executable file")
        return override
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise FFmpegNotFound(
            "no ffmpeg found: install it (apt-get install ffmpeg / conda install ffmpeg) "
            "or `pip install imageio-ffmpeg`"
        ) from exc
    return imageio_ffmpeg.get_ffmpeg_exe()
