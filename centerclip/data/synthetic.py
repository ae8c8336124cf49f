"""Synthetic twin of MSR-VTT: videos of coloured shapes whose captions can be learnt from pixels.

Each video shows one or two *events* in order; an event is a coloured shape moving in one
direction ("a red circle moves left, then a blue square falls"). Colour, shape, motion and
the order of events are all visible in the frames, so a model trained on these captions
measurably beats chance. Videos are real files written by ffmpeg at 25 or 30 fps in mixed
resolutions (portrait included), and the annotations use MSR-VTT's exact on-disk format so
the real parsers and everything downstream run unchanged:

    <root>/MSRVTT/videos/all/videoNNNN.mp4
    <root>/msrvtt_data/MSRVTT_data.json          {"videos": [...], "sentences": [{video_id, caption, sen_id}]}
    <root>/msrvtt_data/MSRVTT_train.7k.csv       header video_id (a subset of 9k)
    <root>/msrvtt_data/MSRVTT_train.9k.csv       header video_id
    <root>/msrvtt_data/MSRVTT_JSFUSION_test.csv  key,vid_key,video_id,sentence (one caption per test video)

Everything is deterministic given the seed.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centerclip.data.ffmpeg_bin import ffmpeg_exe

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
# (width, height, fps): landscape, portrait, wide and square sources, as in the wild
FORMATS = ((320, 240, 25), (240, 320, 30), (426, 240, 30), (288, 288, 25), (360, 202, 25))


@dataclass(frozen=True)
class Event:
    colour: str
    shape: str
    motion: str

    def phrase(self) -> str:
        return f"a {self.colour} {self.shape} {self.motion}"


@dataclass(frozen=True)
class SyntheticVideo:
    video_id: str
    events: tuple[Event, ...]
    width: int
    height: int
    fps: int
    seconds: float

    def caption(self, variant: int = 0) -> str:
        """Caption number ``variant``; variants are paraphrases describing the same content."""
        phrases = [e.phrase() for e in self.events]
        joiners = (", then ", " and then ", " followed by ", ". after that ")
        text = joiners[variant % len(joiners)].join(phrases)
        return text if variant % 2 == 0 else f"video of {text}"


def plan_videos(n_videos: int, seed: int, first_id: int = 0, seconds: tuple[float, float] = (2.0, 4.0),
                unique: bool = False) -> list[SyntheticVideo]:
    """Draw the content of ``n_videos`` videos (no pixels yet).

    With ``unique`` no two videos share the same events, so that a test split has exactly
    one right answer per caption.
    """
    rng = np.random.default_rng(seed)
    colours, motions = list(COLOURS), list(MOTIONS)
    videos: list[SyntheticVideo] = []
    seen: set[tuple[Event, ...]] = set()
    while len(videos) < n_videos:
        n_events = int(rng.integers(1, 3))
        events = tuple(
            Event(colours[rng.integers(len(colours))], SHAPES[rng.integers(len(SHAPES))],
                  motions[rng.integers(len(motions))])
            for _ in range(n_events)
        )
        w, h, fps = FORMATS[rng.integers(len(FORMATS))]
        secs = float(np.round(rng.uniform(*seconds), 1))
        if unique and events in seen:
            continue
        seen.add(events)
        videos.append(SyntheticVideo(f"video{first_id + len(videos)}", events, w, h, fps, secs))
    return videos


def _shape_mask(shape: str, h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r) & (np.abs(dy) <= r)
    # upward triangle: inside when below the two slanted edges and above the base
    return (dy <= r) & (dy >= -r + 2 * np.abs(dx))


def render_frames(video: SyntheticVideo, seed: int = 0) -> np.ndarray:
    """Pixels of ``video``: uint8 array [n_frames, height, width, 3].

    The events play one after another, each for an equal share of the duration; the shape
    travels across most of the frame in its direction of motion.
    """
    h, w = video.height, video.width
    n = max(1, int(round(video.seconds * video.fps)))
    rng = np.random.default_rng(seed)
    background = np.full((h, w, 3), 30, np.uint8)
    background += rng.integers(0, 12, size=(h, w, 3), dtype=np.uint8)  # mild texture
    frames = np.repeat(background[None], n, axis=0)
    r = 0.14 * min(h, w)
    per_event = n / len(video.events)
    for t in range(n):
        e = video.events[min(int(t / per_event), len(video.events) - 1)]
        progress = (t - int(t / per_event) * per_event) / max(per_event - 1, 1)
        dx, dy = MOTIONS[e.motion]
        # start on one side of the frame and cross to the other
        cx = w / 2 + dx * (progress - 0.5) * (w - 3 * r)
        cy = h / 2 + dy * (progress - 0.5) * (h - 3 * r)
        frames[t][_shape_mask(e.shape, h, w, cx, cy, r)] = COLOURS[e.colour]
    return frames


def write_video(frames: np.ndarray, path: Path, fps: int) -> None:
    """Encode RGB frames [n, h, w, 3] as an H.264 mp4 with ffmpeg (atomically)."""
    n, h, w, _ = frames.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    cmd = [ffmpeg_exe(), "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast",
           "-pix_fmt", "yuv420p", str(tmp)]
    proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg could not write {path}: {proc.stderr.decode(errors='replace')}")
    os.replace(tmp, path)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)


def make_msrvtt_twin(root: str | os.PathLike, n_train: int, n_test: int, seed: int = 0,
                     captions_per_video: int = 4, threads: int = 2) -> dict[str, int]:
    """Write a synthetic MSR-VTT (videos + annotations in the real layout) under ``root``.

    The first ``n_train`` videos form the 9k-style training list (the first 7/9 of them the
    7k-style list), the next ``n_test`` the 1k-A-style test list with one caption each.
    Returns counts of what was written.
    """
    root = Path(root)
    video_dir = root / "MSRVTT" / "videos" / "all"
    ann_dir = root / "msrvtt_data"
    ann_dir.mkdir(parents=True, exist_ok=True)
    train = plan_videos(n_train, seed)
    test = plan_videos(n_test, seed + 1, first_id=n_train, unique=True)
    videos = train + test

    def render(i_video: tuple[int, SyntheticVideo]) -> None:
        i, v = i_video
        write_video(render_frames(v, seed=seed * 100_003 + i), video_dir / f"{v.video_id}.mp4", v.fps)

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(render, enumerate(videos)))

    sentences = []
    for v in train:
        sentences += [{"caption": v.caption(k), "video_id": v.video_id} for k in range(captions_per_video)]
    for v in test:
        sentences.append({"caption": v.caption(0), "video_id": v.video_id})
    for sen_id, s in enumerate(sentences):
        s["sen_id"] = sen_id
    data = {
        "info": {"description": "synthetic MSR-VTT twin generated by centerclip", "seed": seed},
        "videos": [{"video_id": v.video_id, "id": int(v.video_id[5:]), "split": "train" if v in train else "test",
                    "width": v.width, "height": v.height, "fps": v.fps, "duration": v.seconds}
                   for v in videos],
        "sentences": sentences,
    }
    tmp = ann_dir / ".MSRVTT_data.json.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, ann_dir / "MSRVTT_data.json")

    n7 = max(1, round(len(train) * 7 / 9))
    _write_csv(ann_dir / "MSRVTT_train.9k.csv", ["video_id"], [[v.video_id] for v in train])
    _write_csv(ann_dir / "MSRVTT_train.7k.csv", ["video_id"], [[v.video_id] for v in train[:n7]])
    _write_csv(ann_dir / "MSRVTT_JSFUSION_test.csv", ["key", "vid_key", "video_id", "sentence"],
               [[f"ret{i}", f"msr{v.video_id[5:]}", v.video_id, v.caption(0)] for i, v in enumerate(test)])
    return {"videos": len(videos), "train": len(train), "test": len(test), "sentences": len(sentences)}
