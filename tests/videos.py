"""Generate small test videos with ffmpeg's ``lavfi`` sources (no fixtures in the repository).

Every function writes into the path it is given (use pytest's ``tmp_path``) and returns that
path as a :class:`pathlib.Path`. The ffmpeg binary is the pipeline's own
(:func:`centerclip.data.ffmpeg_bin.ffmpeg_exe`, so ``$CENTERCLIP_FFMPEG`` is honoured); no
ffprobe is needed. Typical use::

    from tests.videos import make_video, make_audio_only, truncate

    src = make_video(tmp_path / "a.mp4", 320, 240, fps=25, seconds=5)
    phone = make_video(tmp_path / "p.mp4", 320, 240, fps=30, seconds=2, rotate=90)
    half = truncate(src, tmp_path / "half.mp4", 0.5)

Encoding a 5 s 320x240 clip takes ~0.2 s on one core; keep clips small and short.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from centerclip.data.ffmpeg_bin import ffmpeg_exe

__all__ = [
    "FFmpegFailed",
    "run_ffmpeg",
    "make_video",
    "make_vfr_video",
    "make_audio_only",
    "truncate",
    "write_text",
    "supports_display_rotation",
]


class FFmpegFailed(RuntimeError):
    """ffmpeg exited non-zero while generating a test video (message holds its stderr)."""


def run_ffmpeg(*args: str | os.PathLike) -> None:
    """Run ``ffmpeg -hide_banner -nostdin -loglevel error -y ARGS...``; raise FFmpegFailed on error."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        raise FFmpegFailed(f"{' '.join(cmd)}\n{proc.stderr.strip()}")


@functools.cache
def supports_display_rotation(exe: str | None = None) -> bool:
    """True when this ffmpeg has the input option ``-display_rotation`` (ffmpeg >= 6)."""
    proc = subprocess.run(
        [exe or ffmpeg_exe(), "-hide_banner", "-h", "full"], capture_output=True, text=True, errors="replace"
    )
    return "-display_rotation" in proc.stdout


def _video_codec_args(codec: str, width: int, height: int, pix_fmt: str | None) -> list[str]:
    if codec == "libx264":
        # 4:2:0 needs even sizes; x264 accepts odd sizes in 4:4:4.
        fmt = pix_fmt or ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
        return ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", fmt]
    if codec in ("mpeg4", "mjpeg"):
        return ["-c:v", codec, "-q:v", "5", "-pix_fmt", pix_fmt or ("yuvj420p" if codec == "mjpeg" else "yuv420p")]
    return ["-c:v", codec, *(["-pix_fmt", pix_fmt] if pix_fmt else [])]


def make_video(
    path: str | os.PathLike,
    width: int = 320,
    height: int = 240,
    fps: float = 25,
    seconds: float = 5,
    *,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    rotate: int | None = None,
    audio: bool = False,
    faststart: bool = True,
) -> Path:
    """Write a test-pattern clip of ``width`` x ``height`` coded pixels, ``fps`` frames/s, ``seconds`` long.

    - ``codec``: an ffmpeg encoder name (``libx264`` default, ``mpeg4``, ``mjpeg``, ...); the
      container follows the file extension (.mp4, .avi, .mkv, .mov). For ``libx264`` with odd
      sizes the pixel format becomes ``yuv444p`` unless ``pix_fmt`` is given.
    - ``rotate``: display rotation metadata in degrees (90, 180, 270) written on top of the
      coded frames, like a phone video: with 90 or 270 a 320x240 clip *displays* as 240x320.
      Uses ``-display_rotation`` (ffmpeg >= 6) or else the legacy ``-metadata:s:v rotate=``
      (ffmpeg <= 5); the rotation is a stream-copy remux, frames are not re-encoded. Use an
      .mp4/.mov path (other containers may drop the rotation).
    - ``audio``: add a 440 Hz AAC track as long as the video.
    - ``faststart``: for .mp4/.mov put the index (moov) at the front, so a truncated copy
      keeps its header and fails in the frame data; with False the index is at the end and
      a truncated copy has no index at all.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # testsrc2 rounds odd sizes down to even; testsrc (v1) keeps them.
    source = "testsrc2" if width % 2 == 0 and height % 2 == 0 else "testsrc"
    lavfi = f"{source}=size={width}x{height}:rate={fps}:duration={seconds}"
    args: list[str | os.PathLike] = ["-f", "lavfi", "-i", lavfi]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-shortest"]
    args += _video_codec_args(codec, width, height, pix_fmt)
    mov = path.suffix.lower() in (".mp4", ".mov", ".m4v")
    if mov and faststart:
        args += ["-movflags", "+faststart"]
    if not rotate:
        run_ffmpeg(*args, path)
        return path
    tmp = path.with_name(f".unrotated-{path.name}")
    run_ffmpeg(*args, tmp)
    try:
        remux = ["-c", "copy"] + (["-movflags", "+faststart"] if mov and faststart else [])
        if supports_display_rotation():
            # -display_rotation is counter-clockwise; the legacy rotate tag is clockwise.
            run_ffmpeg("-display_rotation", str(-rotate), "-i", tmp, *remux, path)
        else:
            run_ffmpeg("-i", tmp, *remux, "-metadata:s:v:0", f"rotate={rotate}", path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def make_vfr_video(path: str | os.PathLike, width: int = 320, height: int = 240, seconds: float = 4) -> Path:
    """Write a variable-frame-rate H.264 clip: 30 fps in even seconds, 10 fps in odd seconds.

    The timestamps are kept as they are (``-fps_mode passthrough``), so the file really has
    irregular frame intervals; its duration is ``seconds`` and it holds ~20 frames per second.
    Needs ffmpeg >= 5.1 (``-fps_mode``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    select = r"select='lt(mod(t\,2)\,1)+not(mod(n\,3))'"
    run_ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={seconds}",
        "-vf", select, "-fps_mode", "passthrough",
        *_video_codec_args("libx264", width, height, None), "-movflags", "+faststart", path,
    )  # fmt: skip
    return path


def make_audio_only(path: str | os.PathLike, seconds: float = 1) -> Path:
    """Write an audio-only file (440 Hz sine, AAC) — e.g. ``x.m4a`` or ``x.mp4`` with no video stream."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    run_ffmpeg("-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", path)
    return path


def truncate(src: str | os.PathLike, dst: str | os.PathLike, fraction: float) -> Path:
    """Copy the first ``fraction`` (0..1) of the bytes of ``src`` to ``dst`` (a cut-off download)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def write_text(path: str | os.PathLike, text: str = "this is not a video\n") -> Path:
    """Write a plain text file (give it a video extension to fake a broken download)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
