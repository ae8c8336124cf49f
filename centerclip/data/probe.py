"""Probe a video without ffprobe: decord for frames/fps/size/duration, ``ffmpeg -i`` for rotation.

Some machines only have the static ffmpeg of ``imageio-ffmpeg``, which ships no ffprobe, so the
stream facts come from decord (which indexes every packet on open, so the frame count is exact
and a file cut off mid-stream fails to open) and the rotation from the banner that ``ffmpeg -i
FILE`` prints on stderr. The banner also tells a non-video ("Invalid data found") and an
audio-only file (no ``Video:`` stream) apart with a clear reason.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from centerclip.data.ffmpeg_bin import ffmpeg_exe

if TYPE_CHECKING:
    import numpy as np

__all__ = ["BadVideo", "probe_video", "probe_header", "ffmpeg_banner", "parse_rotation"]


class BadVideo(Exception):
    """A video that cannot be used; ``str(exc)`` names the file and says why.

    ``BadVideo(path, reason)`` gives the message ``"<path>: <reason>"`` and keeps both parts
    in ``.path`` and ``.reason`` (for bad-video lists); ``BadVideo(message)`` is also accepted
    (then ``.path`` is None and ``.reason`` is the whole message).
    """

    def __init__(self, path: str | os.PathLike, reason: str | None = None):
        if reason is None:
            self.path, self.reason = None, str(path)
            super().__init__(self.reason)
        else:
            self.path, self.reason = os.fspath(path), reason
            super().__init__(f"{self.path}: {reason}")


_STREAM = re.compile(r"^\s*Stream #\d+:\d+")
_VIDEO = re.compile(r"^\s*Stream #\d+:\d+.*?: Video: ")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)
_ROTATE_TAG = re.compile(r"^\s*rotate\s*:\s*(-?\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
_ERROR_HINTS = ("Invalid data found", "No such file", "Permission denied", "moov atom not found", "Error opening")


def ffmpeg_banner(path: str | os.PathLike, timeout: float = 60) -> str:
    """stderr of ``ffmpeg -hide_banner -nostdin -i PATH`` (ffmpeg exits 1: no output is given)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", os.path.abspath(path)],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return proc.stderr


def _video_section(banner: str) -> list[str] | None:
    """Lines of the first real video stream (its ``Stream`` line, metadata and side data)."""
    lines = banner.splitlines()
    for i, line in enumerate(lines):
        if _VIDEO.match(line) and "(attached pic)" not in line:
            section = [line]
            for rest in lines[i + 1 :]:
                if _STREAM.match(rest) or not rest.startswith(" "):
                    break
                section.append(rest)
            return section
    return None


def parse_rotation(banner: str) -> int:
    """Display rotation of the first video stream, from an ``ffmpeg -i`` banner, in {0, 90, 180, 270}.

    Understands the display-matrix side data ("displaymatrix: rotation of -90.00 degrees",
    ffmpeg >= 4; "Display Matrix: ..." in ffmpeg >= 6) and the legacy ``rotate`` metadata tag
    (ffmpeg <= 4). The angle is ffmpeg's, normalised to [0, 360) and rounded to a quarter
    turn; its sign convention differs across ffmpeg versions, so callers should rely only on
    ``rotation in (90, 270)`` meaning "width and height are swapped on display".
    """
    section = _video_section(banner) or []
    for line in section:
        m = _ROTATION.search(line)
        if m:
            return int(round(float(m.group(1)) / 90.0)) * 90 % 360
    for line in section:
        m = _ROTATE_TAG.match(line)
        if m:
            return int(round(float(m.group(1)) / 90.0)) * 90 % 360
    return 0


def _first_error(banner: str) -> str:
    for line in banner.splitlines():
        if any(h in line for h in _ERROR_HINTS):
            return re.sub(r"^\[[^\]]*\]\s*", "", line.strip())
    lines = [ln.strip() for ln in banner.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_SIZE = re.compile(r",\s*(\d+)x(\d+)[\s,\[]")
_FPS = re.compile(r",\s*(\d+(?:\.\d+)?)(k?)\s+(?:fps|tbr)\b")


def _check_file(p: Path) -> None:
    if not p.exists():
        raise BadVideo(p, "file not found")
    if not p.is_file():
        raise BadVideo(p, "not a regular file")
    if p.stat().st_size == 0:
        raise BadVideo(p, "empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise BadVideo(p, "file not readable (permission denied)")


def probe_header(path: str | os.PathLike) -> dict:
    """What the ``ffmpeg -i`` banner says about the first video stream (no decoding).

    Returns ``dict(width, height, fps, frames, duration, rotation, source="ffmpeg-header")``
    with the displayed size; ``duration`` is the container's (it may include a longer audio
    track), ``frames`` = round(duration x fps), and any of them is 0 when the banner lacks it.
    Raises :class:`BadVideo` for a missing/empty/unreadable file, a file ffmpeg cannot open
    and one without a video stream ("no video stream").
    """
    p = Path(path)
    _check_file(p)
    try:
        banner = ffmpeg_banner(p)
    except subprocess.TimeoutExpired:
        raise BadVideo(p, "ffmpeg timed out reading the header") from None
    if "Input #0" not in banner:
        raise BadVideo(p, f"not a video ffmpeg can open: {_first_error(banner)}")
    section = _video_section(banner)
    if section is None:
        raise BadVideo(p, "no video stream (audio-only or data file)")
    rotation = parse_rotation(banner)
    m = _DURATION.search(banner)
    duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else 0.0
    m = _SIZE.search(section[0] + " ")
    width, height = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    if rotation in (90, 270):
        width, height = height, width
    m = _FPS.search(section[0])
    fps = float(m.group(1)) * (1000 if m.group(2) else 1) if m else 0.0
    return dict(
        width=width,
        height=height,
        fps=fps,
        frames=int(round(duration * fps)),
        duration=duration,
        rotation=rotation,
        source="ffmpeg-header",
    )


def _decord_message(exc: Exception) -> str:
    """Why decord failed, from its exception (one line of C++ log text without the log prefix)."""
    msg = " ".join(str(exc).split())
    msg = re.sub(r"^\[[\d:]+\]\s*\S+:\d+:\s*", "", msg)[:200]
    return f"decord cannot read it (truncated, corrupt or unsupported codec?): {msg}"


def _decord_read(p: Path) -> tuple[int, int, int, np.ndarray, float]:
    """``(frames, coded width, coded height, frame timestamps, average fps)`` of ``p`` from decord,
    or BadVideo with the reason it cannot be read."""
    import decord  # imported late: heavy, and only needed here

    vr = None
    try:
        vr = decord.VideoReader(os.fspath(p), num_threads=1)
        n = len(vr)
        if n == 0:
            raise BadVideo(p, "video stream has no frames")
        coded_h, coded_w = vr[0].shape[:2]  # see the rotation note in _displayed_size
        return n, coded_w, coded_h, vr.get_frame_timestamp(list(range(n))), float(vr.get_avg_fps() or 0.0)
    except BadVideo:
        raise
    except Exception as exc:  # decord raises DECORDError / RuntimeError with C++ log text
        raise BadVideo(p, _decord_message(exc)) from None
    finally:
        del vr  # release the demuxer promptly


def _duration(p: Path, ts: np.ndarray, n: int, avg_fps: float) -> float:
    """Seconds from the first frame's start to the last frame's end (``n / avg_fps`` without timestamps)."""
    duration = float(ts[:, 1].max() - ts[:, 0].min())
    if not duration > 0:  # degenerate timestamps: fall back on the stream's nominal rate
        if not avg_fps > 0:
            raise BadVideo(p, "video stream has no usable timestamps or frame rate")
        duration = n / avg_fps
    return duration


def _displayed_size(coded_w: int, coded_h: int, header: dict) -> tuple[int, int]:
    """Width and height as displayed, from decord's first frame and the header's rotation."""
    # decord 0.6 applies the rotation itself (frames come out as displayed); older builds
    # return coded frames. Swap only when decord's frames still have the coded orientation.
    width, height = int(coded_w), int(coded_h)
    if header["rotation"] in (90, 270) and (width, height) == (header["height"], header["width"]) and width != height:
        width, height = height, width
    return width, height


def probe_video(path: str | os.PathLike, *, header_fallback: bool = False) -> dict:
    """Facts about the first video stream of ``path``, read with decord (exact).

    Returns ``dict(width, height, fps, frames, duration, rotation, source="decord")``:
    ``width``/``height`` are the *displayed* size (coded size with the sides swapped for a
    90/270 rotation); ``frames`` the number of video packets (exact, also for variable frame
    rate); ``duration`` in seconds from the first frame's start to the last frame's end;
    ``fps`` = frames / duration (the average rate); ``rotation`` as :func:`parse_rotation`
    (from the ``ffmpeg -i`` banner: decord does not report it).

    Raises :class:`BadVideo` for a missing or empty file, a file ffmpeg cannot open (text,
    broken header, index missing), a file with no video stream, and one decord cannot index
    (cut off mid-stream, or a codec decord's bundled FFmpeg lacks, e.g. AV1) or that has no
    frame. With ``header_fallback=True`` a file ffmpeg opens but decord cannot is not an
    error: the :func:`probe_header` facts are returned instead, with ``decord_error`` added.
    """
    p = Path(path)
    header = probe_header(p)  # raises for non-videos and audio-only files
    try:
        n, coded_w, coded_h, ts, avg_fps = _decord_read(p)
    except BadVideo as exc:
        if header_fallback and header["duration"] > 0:
            return {**header, "decord_error": exc.reason}
        raise
    duration = _duration(p, ts, n, avg_fps)
    width, height = _displayed_size(coded_w, coded_h, header)
    return dict(
        width=width,
        height=height,
        fps=n / duration,
        frames=int(n),
        duration=duration,
        rotation=header["rotation"],
        source="decord",
    )
