"""Finding the videos under a folder, and turning one into the model's input exactly as the data stage does.

A video goes through the data stage's own steps: :func:`centerclip.data.compress.compress_video` to a
temporary 3-fps H.264 file (shorter side = the model's input resolution; 224 for every model of the
paper, as the workflow's ``preprocess.short_side``), then :func:`centerclip.data.frame_cache.decode_video`
and :func:`~centerclip.data.frame_cache.centre_crop` (the frame cache's pixels), then the evaluation's
sampling and padding (:func:`centerclip.data.datasets.sample_video`). The index's embedding of a video
is therefore the one evaluation computes from a frame cache of it.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from centerclip.data.compress import BadVideo, compress_video
from centerclip.data.datasets import sample_video
from centerclip.data.frame_cache import centre_crop, decode_video
from centerclip.data.probe import probe_video

#: Extensions (lower case) of the containers ffmpeg reads that hold video.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".wmv", ".flv",
                              ".f4v", ".3gp", ".3g2", ".ts", ".mts", ".m2ts", ".m2t", ".vob", ".mxf", ".asf",
                              ".divx", ".ogv"})
FPS = 3.0  # the data stage's frame rate (config preprocess.fps)
THUMB = 96  # side of one frame of a thumbnail strip


@dataclass(frozen=True)
class VideoFile:
    """A video found under the root: ``path`` is POSIX and relative to the root (the index's key)."""

    path: str
    size: int
    mtime_ns: int
    error: str | None = None  # set when the file cannot even be stat'ed (a broken symlink)


def find_videos(root: str | os.PathLike) -> list[VideoFile]:
    """Every video file under ``root`` (recursively, by extension, case-insensitive), sorted by path.

    Hidden files and folders (a name starting with ``.``) are skipped, as are symlinked folders (a
    link loop would never end); symlinked files are followed, so their size and mtime are the target's.
    """
    root = Path(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or Path(name).suffix.lower() not in VIDEO_EXTENSIONS:
                continue
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            try:
                st = full.stat()  # follows a symlink
            except OSError as exc:
                st = full.lstat()
                found.append(VideoFile(rel, st.st_size, st.st_mtime_ns, f"cannot be read ({exc.strerror or exc})"))
                continue
            if stat.S_ISREG(st.st_mode):
                found.append(VideoFile(rel, st.st_size, st.st_mtime_ns))
    return sorted(found, key=lambda v: v.path)


@dataclass
class PreparedVideo:
    """One video ready for the model."""

    video: torch.Tensor  # float32 [T, 3, S, S], CLIP-normalised (T = the checkpoint's frame count)
    mask: torch.Tensor  # bool [T]: real frames (a short video repeats its last one)
    duration: float  # seconds of the source video
    frames_used: int  # real sampled frames, mask.sum()
    thumbnail: bytes  # JPEG: the real sampled frames side by side, each THUMB x THUMB


def thumbnail_strip(frames: np.ndarray, side: int = THUMB, quality: int = 85) -> bytes:
    """uint8 frames [n, S, S, 3] -> one JPEG of the frames left to right, each scaled to ``side`` x ``side``."""
    from PIL import Image

    strip = Image.new("RGB", (side * max(len(frames), 1), side))
    for i, frame in enumerate(frames):
        strip.paste(Image.fromarray(frame).resize((side, side), Image.BILINEAR), (i * side, 0))
    buf = io.BytesIO()
    strip.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def prepare_video(src: str | os.PathLike, size: int, num_frames: int, workdir: str | os.PathLike) -> PreparedVideo:
    """Compress, decode, crop and sample one video (see the module's docstring).

    ``size``: the model's input resolution; ``num_frames``: the checkpoint's evaluation frame count;
    ``workdir``: where the temporary 3-fps file goes (removed before returning).
    Raises :class:`BadVideo` with a reason for a video that cannot be used.
    """
    src = Path(src)
    duration = float(probe_video(src, header_fallback=True)["duration"])
    fd, tmp_name = tempfile.mkstemp(suffix=".mp4", dir=workdir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        compress_video(src, tmp, fps=FPS, short_side=size)
        try:
            frames = centre_crop(decode_video(tmp), size)
        except BadVideo as exc:  # its message names the temporary file: name the source instead
            raise BadVideo(src, exc.reason.replace(str(tmp), "the 3-fps copy")) from None
    finally:
        tmp.unlink(missing_ok=True)
    picked: list[np.ndarray] = []

    def read(idx: np.ndarray) -> np.ndarray:
        picked.append(frames[idx])  # kept for the thumbnail strip
        return picked[-1]

    video, mask = sample_video(len(frames), read, num_frames, train=False)
    real = picked[0][mask.numpy()]
    return PreparedVideo(video=video, mask=mask, duration=duration, frames_used=int(mask.sum()),
                         thumbnail=thumbnail_strip(real))


_I = TypeVar("_I")
_O = TypeVar("_O")


def prepare_in_order(items: Iterable[_I], fn: Callable[[_I], _O], workers: int,
                     ahead: int) -> Iterator[tuple[_I, Future]]:
    """``(item, future of fn(item))`` in the order of ``items``, with ``workers`` threads and at most
    ``ahead`` items in flight, so that decoded videos never pile up in memory faster than they are
    encoded. Each ffmpeg runs in its own process: threads give real parallelism here."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: list[tuple[_I, Future]] = []
        try:
            for item in items:
                pending.append((item, pool.submit(fn, item)))
                if len(pending) >= max(1, ahead):
                    yield pending.pop(0)
            while pending:
                yield pending.pop(0)
        finally:  # an interrupted run: do not start the queued videos
            for _, fut in pending:
                fut.cancel()
