"""The synthetic video renderer: coloured shapes moving on a textured background, drawn with numpy and
written by ffmpeg.

:func:`render_frames` draws a :class:`SyntheticVideo` (its events play one after another), and
:func:`write_video` / :func:`render_all` encode frames into real video files (H.264 in .mp4/.mkv, MPEG-4
part 2 in .avi).
"""

from __future__ import annotations

import functools
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centerclip.data.ffmpeg_bin import ffmpeg_exe
from centerclip.data.synthetic.captions import Event, numbered_caption
from centerclip.util import atomic

COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 220, 40),
}
SHAPES = ("circle", "square", "triangle")
# motion name -> unit direction (dx, dy) in image coordinates (y grows downwards)
MOTIONS = {
    "moves left": (-1.0, 0.0),
    "moves right": (1.0, 0.0),
    "rises": (0.0, -1.0),
    "falls": (0.0, 1.0),
}


@dataclass(frozen=True)
class SyntheticVideo:
    """The content and format of one synthetic video (no pixels): its events, size, frame rate, length."""

    video_id: str
    events: tuple[Event, ...]
    width: int
    height: int
    fps: int
    seconds: float
    # Explicit (start, end) seconds of each event; gaps between them show the background only.
    # None: the events play back to back, each for an equal share of the duration.
    spans: tuple[tuple[float, float], ...] | None = None

    def caption(self, variant: int = 0) -> str:
        """Caption number ``variant``; variants are paraphrases describing the same content."""
        return numbered_caption(self.events, variant)


def _shape_mask(shape: str, h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    """The pixels of a whole ``h`` x ``w`` frame covered by ``shape`` of radius ``r`` centred at (cx, cy)."""
    yy, xx = np.mgrid[0:h, 0:w]
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    # upward triangle: inside when below the two slanted edges and above the base
    return (dy <= r) & (dy >= -r + 2 * np.abs(dx))


def draw_shape(frame: np.ndarray, shape: str, cx: float, cy: float, r: float,
               colour: tuple[int, int, int]) -> None:
    """Paint the shape into ``frame`` in place: the same pixels as ``_shape_mask`` on the whole
    frame, computed only inside the shape's bounding box (every shape lies within |dx|, |dy| <= r)."""
    h, w = frame.shape[:2]
    x0, x1 = max(0, int(np.floor(cx - r))), min(w, int(np.floor(cx + r)) + 1)
    y0, y1 = max(0, int(np.floor(cy - r))), min(h, int(np.floor(cy + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        mask = dx * dx + dy * dy <= r * r
    elif shape == "square":
        mask = (np.abs(dx) <= r) & (np.abs(dy) <= r)
    else:
        mask = (dy <= r) & (dy >= -r + 2 * np.abs(dx))
    frame[y0:y1, x0:x1][mask] = colour


def event_frames(video: SyntheticVideo, n_frames: int) -> list[tuple[int, float] | None]:
    """For each frame, ``(event index, progress in [0, 1])``, or None where no event plays.

    Without ``spans`` the events share the duration equally (the MSR-VTT twin's timing);
    with ``spans`` event k covers the frames whose time ``t / fps`` lies in [start_k, end_k).
    """
    n_events = len(video.events)
    out: list[tuple[int, float] | None] = [None] * n_frames
    if video.spans is None:
        per_event = n_frames / n_events
        for t in range(n_frames):
            k = int(t / per_event)
            out[t] = (min(k, n_events - 1), (t - k * per_event) / max(per_event - 1, 1))
        return out
    if len(video.spans) != n_events:
        raise ValueError(f"{video.video_id}: {n_events} events but {len(video.spans)} spans")
    for k, (start, end) in enumerate(video.spans):
        t0 = max(0, int(np.ceil(start * video.fps - 1e-6)))
        t1 = min(n_frames, int(np.ceil(end * video.fps - 1e-6)))
        for t in range(t0, t1):
            out[t] = (k, (t - t0) / max(t1 - t0 - 1, 1))
    return out


def render_frames(video: SyntheticVideo, seed: int = 0) -> np.ndarray:
    """Pixels of ``video``: uint8 array [n_frames, height, width, 3].

    The events play one after another (for equal shares of the duration, or during their
    ``spans``); the shape travels across most of the frame in its direction of motion.
    """
    h, w = video.height, video.width
    n = max(1, int(round(video.seconds * video.fps)))
    rng = np.random.default_rng(seed)
    background = np.full((h, w, 3), 30, np.uint8)
    background += rng.integers(0, 12, size=(h, w, 3), dtype=np.uint8)  # mild texture
    frames = np.empty((n, h, w, 3), np.uint8)
    frames[:] = background  # much faster than np.repeat
    r = 0.14 * min(h, w)
    for t, playing in enumerate(event_frames(video, n)):
        if playing is None:
            continue
        k, progress = playing
        e = video.events[k]
        dx, dy = MOTIONS[e.motion]
        # start on one side of the frame and cross to the other
        cx = w / 2 + dx * (progress - 0.5) * (w - 3 * r)
        cy = h / 2 + dy * (progress - 0.5) * (h - 3 * r)
        draw_shape(frames[t], e.shape, cx, cy, r, COLOURS[e.colour])
    return frames


# container suffix -> encoder arguments: H.264 for mp4/mkv, MPEG-4 part 2 for avi (as MSVD/LSMDC ship)
ENCODERS = {
    ".mp4": ["-c:v", "libx264", "-preset", "veryfast"],
    ".mkv": ["-c:v", "libx264", "-preset", "veryfast"],
    ".avi": ["-c:v", "mpeg4", "-q:v", "4"],
}


def write_video(frames: np.ndarray, path: Path, fps: int, threads: int | None = None,
                ffmpeg: str | None = None) -> None:
    """Encode RGB frames [n, h, w, 3] with ffmpeg (atomically); the encoder follows the suffix:
    H.264 for .mp4/.mkv, MPEG-4 part 2 for .avi. ``threads``: encoder threads (ffmpeg's
    default when None; 1 when several videos are encoded in parallel); ``ffmpeg``: the
    executable (default :func:`ffmpeg_exe`)."""
    n, h, w, _ = frames.shape
    path = Path(path)
    if path.suffix not in ENCODERS:
        raise ValueError(f"{path}: no encoder for {path.suffix!r}; use one of {sorted(ENCODERS)}")
    # the temporary name keeps the suffix: ffmpeg picks the container from it
    with atomic.path(path) as tmp:
        cmd = [ffmpeg or ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-an", *ENCODERS[path.suffix],
               *(["-threads", str(threads)] if threads else []), "-pix_fmt", "yuv420p", str(tmp)]
        proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg could not write {path}: {proc.stderr.decode(errors='replace')}")


@functools.cache
def _quick_ffmpeg() -> str:
    """The ffmpeg to write many small synthetic videos with: ``$CENTERCLIP_FFMPEG`` if set, else the
    static binary of imageio-ffmpeg, which starts ~5x faster than a distribution ffmpeg linked
    against ~200 shared libraries (start-up dominates a 3-second clip), else :func:`ffmpeg_exe`."""
    if os.environ.get("CENTERCLIP_FFMPEG"):
        return ffmpeg_exe()
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return ffmpeg_exe()


def render_all(jobs: list[tuple[SyntheticVideo, Path, int]], threads: int) -> None:
    """Render and encode each (video, path, pixel seed) on a thread pool (ffmpeg runs outside the GIL)."""
    def render(job: tuple[SyntheticVideo, Path, int]) -> None:
        v, path, pixel_seed = job
        write_video(render_frames(v, seed=pixel_seed), path, v.fps, threads=1, ffmpeg=_quick_ffmpeg())

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(render, jobs))
