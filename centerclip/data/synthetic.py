"""Synthetic twins of MSR-VTT, MSVD, LSMDC and ActivityNet Captions: videos of coloured
shapes whose captions can be learnt from pixels.

Each video shows one or more *events*; an event is a coloured shape moving in one direction
("a red circle moves left, then a blue square falls"). Colour, shape, motion and the order of
events are all visible in the frames, so a model trained on these captions measurably beats
chance. Videos are real files written by ffmpeg, and the annotations use each dataset's exact
on-disk format, so the real parsers (:mod:`centerclip.data.annotations`) and everything
downstream run unchanged:

MSR-VTT (:func:`make_msrvtt_twin`; mp4, 25/30 fps, mixed resolutions, portrait included)::

    <root>/MSRVTT/videos/all/videoNNNN.mp4
    <root>/msrvtt_data/MSRVTT_data.json          {"videos": [...], "sentences": [{video_id, caption, sen_id}]}
    <root>/msrvtt_data/MSRVTT_train.7k.csv       header video_id (a subset of 9k)
    <root>/msrvtt_data/MSRVTT_train.9k.csv       header video_id
    <root>/msrvtt_data/MSRVTT_JSFUSION_test.csv  key,vid_key,video_id,sentence (one caption per test video)

MSVD (:func:`make_msvd_twin`; ids ``<youtube-id>_<start>_<end>``, mpeg4 in .avi)::

    <root>/YouTubeClips/<id>.avi
    <root>/msvd_data/raw-captions.pkl            {id: [[token, ...], ...]}  (many captions per video)
    <root>/msvd_data/{train,val,test}_list.txt   one id per line

LSMDC (:func:`make_lsmdc_twin`; one caption per clip, clips grouped by movie, mpeg4 in .avi)::

    <root>/videos/<movie>/<movie>_HH.MM.SS.mmm-HH.MM.SS.mmm.avi
    <root>/annotations/LSMDC16_annos_training.csv           tab-separated, no header, 6 columns:
    <root>/annotations/LSMDC16_annos_val.csv                clip_id, start_aligned, end_aligned,
    <root>/annotations/LSMDC16_challenge_1000_publictect.csv   start_extracted, end_extracted, sentence

ActivityNet Captions (:func:`make_activitynet_twin`; 20-40 s videos with 3-5 timed events)::

    <root>/videos/v_<id>.mp4                     (a few .mkv, as in the real crawls)
    <root>/annotations/train.json                {"v_<id>": {duration, timestamps, sentences}}
    <root>/annotations/val_1.json                the retrieval test split
    <root>/original_splits/train_ids.json        ["v_<id>", ...]: twins of the original code's lists,
    <root>/original_splits/val_ids.json          each naming videos the caption file lacks and
    <root>/original_splits/video_path.json       missing some it has; {"<id>": "<id>.mp4"}

The paths are those the parsers read (:data:`centerclip.data.annotations.LAYOUTS`).

Test-split videos never share their content, so each test caption has exactly one right
video. Everything is deterministic given the seed.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import pickle
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from centerclip.util import atomic
from centerclip.data.annotations import (ACTIVITYNET_BROKEN, ACTIVITYNET_LISTS, ACTIVITYNET_LISTS_DIR, LAYOUTS,
                                         MSRVTT_FILES, MSVD_FILES)
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
# The other short twins use fewer frames per second (fewer frames to draw and encode; the
# pipeline resamples everything to 3 fps anyway). MSVD: YouTube clips, mostly 4:3;
# LSMDC: widescreen movie clips.
MSVD_FORMATS = ((320, 240, 15), (240, 320, 15), (426, 240, 12), (320, 240, 12))
LSMDC_FORMATS = ((384, 160, 12), (426, 240, 12), (320, 136, 15))


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
    # Explicit (start, end) seconds of each event; gaps between them show the background only.
    # None: the events play back to back, each for an equal share of the duration.
    spans: tuple[tuple[float, float], ...] | None = None

    def caption(self, variant: int = 0) -> str:
        """Caption number ``variant``; variants are paraphrases describing the same content."""
        phrases = [e.phrase() for e in self.events]
        joiners = (", then ", " and then ", " followed by ", ". after that ")
        text = joiners[variant % len(joiners)].join(phrases)
        return text if variant % 2 == 0 else f"video of {text}"


def plan_videos(n_videos: int, seed: int, first_id: int = 0, seconds: tuple[float, float] = (2.0, 4.0),
                unique: bool = False, formats: tuple[tuple[int, int, int], ...] = FORMATS) -> list[SyntheticVideo]:
    """Draw the content of ``n_videos`` videos (no pixels yet), each in one of ``formats``
    ``(width, height, fps)``.

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
        w, h, fps = formats[rng.integers(len(formats))]
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


def _draw_shape(frame: np.ndarray, shape: str, cx: float, cy: float, r: float, colour) -> None:
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
        _draw_shape(frames[t], e.shape, cx, cy, r, COLOURS[e.colour])
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


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a CSV file atomically (csv's own line endings, as the real annotation files have)."""
    with atomic.path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def make_msrvtt_twin(root: str | os.PathLike, n_train: int, n_test: int, seed: int = 0,
                     captions_per_video: int = 4, threads: int = 2) -> dict[str, int]:
    """Write a synthetic MSR-VTT (videos + annotations in the real layout) under ``root``.

    The first ``n_train`` videos form the 9k-style training list (the first 7/9 of them the
    7k-style list), the next ``n_test`` the 1k-A-style test list with one caption each.
    Returns counts of what was written.
    """
    root = Path(root)
    video_dir = root / LAYOUTS["msrvtt"].video_dir
    ann_dir = root / LAYOUTS["msrvtt"].annotation_dir
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
    atomic.write_text(json.dumps(data), ann_dir / MSRVTT_FILES["captions"])

    n7 = max(1, round(len(train) * 7 / 9))
    _write_csv(ann_dir / MSRVTT_FILES["train_9k"], ["video_id"], [[v.video_id] for v in train])
    _write_csv(ann_dir / MSRVTT_FILES["train_7k"], ["video_id"], [[v.video_id] for v in train[:n7]])
    _write_csv(ann_dir / MSRVTT_FILES["test"], ["key", "vid_key", "video_id", "sentence"],
               [[f"ret{i}", f"msr{v.video_id[5:]}", v.video_id, v.caption(0)] for i, v in enumerate(test)])
    return {"videos": len(videos), "train": len(train), "test": len(test), "sentences": len(sentences)}


# ---------------------------------------------------------------------------------------------
# Twins of MSVD, LSMDC and ActivityNet Captions: the same events, other layouts and wordings.

# Paraphrases for the many-caption datasets. Every wording names the colour, the shape and the
# motion with words no other value uses, so two different event sequences never share a caption.
MOTION_WORDS = {
    "moves left": ("moves left", "is moving to the left", "goes left", "slides to the left"),
    "moves right": ("moves right", "is moving to the right", "goes right", "slides to the right"),
    "rises": ("rises", "is moving up", "goes up", "floats upwards"),
    "falls": ("falls", "is moving down", "goes down", "drops downwards"),
}
EVENT_TEMPLATES = ("a {colour} {shape} {motion}", "the {colour} {shape} {motion}",
                   "one {colour} {shape} {motion}", "a {shape} in {colour} {motion}")
JOINERS = (" then ", " and then ", " and after that ", " and next ")
_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _sub_seed(seed: int, *tags: str) -> int:
    """An independent, reproducible seed for one (dataset, split, purpose) stream."""
    words = [int(seed)] + [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in tags]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def paraphrase(events: tuple[Event, ...], rng: np.random.Generator) -> str:
    """A random wording of ``events`` in order (lower case, no punctuation, like MSVD)."""
    phrases = [EVENT_TEMPLATES[rng.integers(len(EVENT_TEMPLATES))].format(
        colour=e.colour, shape=e.shape, motion=MOTION_WORDS[e.motion][rng.integers(len(MOTION_WORDS[e.motion]))])
        for e in events]
    text = phrases[0]
    for p in phrases[1:]:
        text += JOINERS[rng.integers(len(JOINERS))] + p
    return text


def _youtube_ids(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    """``n`` distinct 11-character YouTube-style ids (letters, digits, '-' and '_', as the real ones)."""
    ids = []
    while len(ids) < n:
        vid = "".join(_ID_CHARS[i] for i in rng.integers(len(_ID_CHARS), size=11))
        if vid not in taken:
            taken.add(vid)
            ids.append(vid)
    return ids


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


def _render_all(jobs: list[tuple[SyntheticVideo, Path, int]], threads: int) -> None:
    """Render and encode each (video, path, pixel seed) on a thread pool (ffmpeg runs outside the GIL)."""
    def render(job: tuple[SyntheticVideo, Path, int]) -> None:
        v, path, pixel_seed = job
        write_video(render_frames(v, seed=pixel_seed), path, v.fps, threads=1, ffmpeg=_quick_ffmpeg())

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        list(pool.map(render, jobs))


def make_msvd_twin(root: str | os.PathLike, n_train: int, n_val: int, n_test: int, seed: int = 0,
                   captions_per_video: int = 8, threads: int = 2) -> dict[str, int]:
    """Write a synthetic MSVD under ``root``: ``YouTubeClips/<id>.avi`` (MPEG-4 part 2) and
    ``msvd_data/{raw-captions.pkl, train_list.txt, val_list.txt, test_list.txt}``.

    Ids look like the real ``<youtube-id>_<start>_<end>``; every video gets
    ``captions_per_video`` paraphrases (lower-case tokens), test videos all differ in content.
    Returns counts of what was written.
    """
    root = Path(root)
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    id_rng = np.random.default_rng(_sub_seed(seed, "msvd", "ids"))
    caption_rng = np.random.default_rng(_sub_seed(seed, "msvd", "captions"))
    taken: set[str] = set()
    splits: dict[str, list[SyntheticVideo]] = {}
    for split, n in sizes.items():
        planned = plan_videos(n, _sub_seed(seed, "msvd", split), unique=split == "test", formats=MSVD_FORMATS)
        splits[split] = []
        for v, yt in zip(planned, _youtube_ids(id_rng, n, taken)):
            start = int(id_rng.integers(0, 300))
            splits[split].append(replace(v, video_id=f"{yt}_{start}_{start + int(np.ceil(v.seconds))}"))
    videos = [v for split in sizes for v in splits[split]]
    _render_all([(v, root / LAYOUTS["msvd"].video_dir / f"{v.video_id}.avi", _sub_seed(seed, "msvd", v.video_id))
                 for v in videos], threads)

    captions = {v.video_id: [paraphrase(v.events, caption_rng).split() for _ in range(captions_per_video)]
                for v in videos}
    ann = root / LAYOUTS["msvd"].annotation_dir
    atomic.write_bytes(pickle.dumps(captions, protocol=4), ann / MSVD_FILES["captions"])
    for split in sizes:
        atomic.write_text("".join(f"{v.video_id}\n" for v in splits[split]), ann / MSVD_FILES[split])
    return {"videos": len(videos), **{s: len(vs) for s, vs in splits.items()},
            "captions": len(videos) * captions_per_video}


def _lsmdc_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}.{ms // 60_000 % 60:02d}.{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _lsmdc_sentence(events: tuple[Event, ...], rng: np.random.Generator) -> str:
    text = ", then ".join(e.phrase() for e in events)
    style = int(rng.integers(3))
    if style == 0:
        return text[0].upper() + text[1:] + "."
    return ("SOMEONE watches as " if style == 1 else "On the screen, ") + text + "."


def make_lsmdc_twin(root: str | os.PathLike, n_train: int, n_val: int, n_test: int, seed: int = 0,
                    clips_per_movie: int = 8, threads: int = 2) -> dict[str, int]:
    """Write a synthetic LSMDC under ``root``: clips ``videos/<movie>/<clip_id>.avi`` (MPEG-4 part 2)
    and the three tab-separated, header-less annotation files in ``annotations/``
    (``LSMDC16_annos_training.csv``, ``LSMDC16_annos_val.csv``,
    ``LSMDC16_challenge_1000_publictect.csv``) with one sentence per clip.

    Clip ids are ``<movie>_<HH.MM.SS.mmm>-<HH.MM.SS.mmm>``; each split has its own movies of up to
    ``clips_per_movie`` clips; test clips all differ in content. Returns counts of what was written.
    """
    root, layout = Path(root), LAYOUTS["lsmdc"]
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    rng = np.random.default_rng(_sub_seed(seed, "lsmdc", "layout"))
    jobs, movies, lines = [], 0, {}
    for split, n in sizes.items():
        planned = plan_videos(n, _sub_seed(seed, "lsmdc", split), unique=split == "test", formats=LSMDC_FORMATS)
        lines[split] = []
        clock = 0.0
        for i, v in enumerate(planned):
            if i % max(1, clips_per_movie) == 0:
                movie = f"{1001 + movies:04d}_Shape_Movie_{2001 + movies}"
                movies += 1
                clock = float(rng.uniform(20, 90))
            start, end = round(clock, 3), round(clock + v.seconds, 3)
            clip_id = f"{movie}_{_lsmdc_time(start)}-{_lsmdc_time(end)}"
            clock = end + float(rng.uniform(1, 30))
            lines[split].append("\t".join([clip_id, _lsmdc_time(start), _lsmdc_time(end), _lsmdc_time(start),
                                           _lsmdc_time(end), _lsmdc_sentence(v.events, rng)]))
            v = replace(v, video_id=clip_id)
            jobs.append((v, root / layout.video_dir / movie / f"{clip_id}.avi", _sub_seed(seed, "lsmdc", clip_id)))
    _render_all(jobs, threads)
    for split, name in layout.files.items():
        atomic.write_text("".join(f"{line}\n" for line in lines[split]), root / layout.annotation_dir / name)
    return {"videos": len(jobs), **sizes, "movies": movies}


_AN_OPENERS = ("Then", "Next,", "After that,", "Later,")


def plan_timed_videos(n_videos: int, seed: int, events: tuple[int, int] = (3, 5),
                      seconds: tuple[float, float] = (20.0, 40.0), size: tuple[int, int] = (320, 180),
                      fps: int = 6, unique: bool = False) -> list[SyntheticVideo]:
    """Long videos with ``events[0]``..``events[1]`` events at explicit times (``spans``, in
    seconds rounded to 0.01, separated by short empty gaps), ActivityNet-style. Ids are ``v_<youtube-id>``."""
    rng = np.random.default_rng(seed)
    colours, motions = list(COLOURS), list(MOTIONS)
    taken: set[str] = set()
    seen: set[tuple[Event, ...]] = set()
    videos: list[SyntheticVideo] = []
    while len(videos) < n_videos:
        n_events = int(rng.integers(events[0], events[1] + 1))
        evs = tuple(Event(colours[rng.integers(len(colours))], SHAPES[rng.integers(len(SHAPES))],
                          motions[rng.integers(len(motions))]) for _ in range(n_events))
        n_frames = int(rng.integers(int(seconds[0] * fps), int(seconds[1] * fps) + 1))
        duration = round(n_frames / fps, 3)
        lengths, gaps = rng.uniform(3.0, 6.0, n_events), rng.uniform(0.2, 1.2, n_events + 1)
        scale = duration / (lengths.sum() + gaps.sum())
        spans, clock = [], 0.0
        for length, gap in zip(lengths, gaps):
            start = clock + gap * scale
            clock = start + length * scale
            spans.append((round(start, 2), min(round(clock, 2), duration)))
        if unique and evs in seen:
            continue
        seen.add(evs)
        vid = "v_" + _youtube_ids(rng, 1, taken)[0]
        videos.append(SyntheticVideo(vid, evs, size[0], size[1], fps, duration, tuple(spans)))
    return videos


def activitynet_sentences(events: tuple[Event, ...], rng: np.random.Generator) -> list[str]:
    """One sentence per event, in order; later sentences start with a space, as in the real files."""
    first = events[0].phrase()
    out = [first[0].upper() + first[1:] + "."]
    out += [f" {_AN_OPENERS[rng.integers(len(_AN_OPENERS))]} {e.phrase()}." for e in events[1:]]
    return out


#: Per split, the twin's videos outside the original code's membership, by why (the real lists differ
#: from the caption files the same ways): captioned but not in the id list; in the id list but not
#: captioned; in both but not in video_path.json. Only the first and last kinds have a video file.
ANET_LEFT_OUT = ("unlisted", "uncaptioned", "no_video")


def _activitynet_lists(kept: list[str], extra: dict[str, str], broken: list[str],
                       rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(id list in a shuffled order, ids video_path.json names) of one split: the kept videos, the
    uncaptioned and no-video extras in the id list; video_path.json lacks only the no-video one."""
    ids = [*kept, extra["uncaptioned"], extra["no_video"], *broken]
    order = rng.permutation(len(ids))  # the original's lists are not in caption-file order
    return [ids[i] for i in order], [v for v in ids if v != extra["no_video"]] + [extra["unlisted"]]


def make_activitynet_twin(root: str | os.PathLike, n_train: int, n_test: int, seed: int = 0,
                          events: tuple[int, int] = (3, 5), seconds: tuple[float, float] = (20.0, 40.0),
                          size: tuple[int, int] = (320, 180), fps: int = 6, mkv_share: float = 0.15,
                          threads: int = 2) -> dict[str, int]:
    """Write a synthetic ActivityNet Captions under ``root``: ``videos/v_<id>.mp4`` (about
    ``mkv_share`` of them .mkv, like the real crawls), ``annotations/{train.json, val_1.json}``,
    each a dict ``v_<id>`` -> ``{"duration", "timestamps", "sentences"}`` with one sentence per
    event and ``timestamps`` = the times the event is on screen, and twins of the original code's
    lists in ``original_splits/`` (``train_ids.json``, ``val_ids.json`` with ``v_<id>``,
    ``video_path.json`` with ``<id>``).

    ``n_train`` / ``n_test`` videos are in the original's membership; per split, one more video of
    each kind of :data:`ANET_LEFT_OUT` is not, and the test split also has ``v_NHznDFD3V3k``, captioned
    and listed but without a video (as in every public copy). Test paragraphs all differ. Returns
    counts of what was written (``train`` / ``test``: the videos in the membership).
    """
    root, layout = Path(root), LAYOUTS["activitynet"]
    rng = np.random.default_rng(_sub_seed(seed, "activitynet", "text"))
    list_rng = np.random.default_rng(_sub_seed(seed, "activitynet", "lists"))
    jobs, counts, had = [], {}, {}
    for split, n in (("train", n_train), ("test", n_test)):
        broken = list(ACTIVITYNET_BROKEN) if split == "test" else []
        # the first n are the kept videos, the same as without the others (the plan is drawn in sequence)
        first_broken = n + len(ANET_LEFT_OUT)
        planned = plan_timed_videos(first_broken + len(broken), _sub_seed(seed, "activitynet", split), events,
                                    seconds, size, fps, unique=split == "test")
        planned = planned[:first_broken] + [replace(v, video_id=b) for v, b in zip(planned[first_broken:], broken)]
        extra = dict(zip(ANET_LEFT_OUT, (v.video_id for v in planned[n:])))
        data, ext = {}, {}
        for v in planned:
            if v.video_id == extra["uncaptioned"]:
                continue
            data[v.video_id] = {"duration": v.seconds, "timestamps": [list(s) for s in v.spans],
                                "sentences": activitynet_sentences(v.events, rng)}
            ext[v.video_id] = ".mkv" if rng.uniform() < mkv_share else ".mp4"
            if v.video_id not in broken:
                jobs.append((v, root / layout.video_dir / f"{v.video_id}{ext[v.video_id]}",
                             _sub_seed(seed, "activitynet", v.video_id)))
        atomic.write_text(json.dumps(data), root / layout.annotation_dir / layout.files[split])
        ids, named = _activitynet_lists([v.video_id for v in planned[:n]], extra, broken, list_rng)
        atomic.write_text(json.dumps(ids), root / ACTIVITYNET_LISTS_DIR / ACTIVITYNET_LISTS[split])
        had.update({vid[2:]: f"{vid[2:]}{ext.get(vid, '.mp4')}" for vid in named})
        counts[split] = n
    atomic.write_text(json.dumps(had), root / ACTIVITYNET_LISTS_DIR / ACTIVITYNET_LISTS["videos"])
    _render_all(jobs, threads)
    return {"videos": len(jobs), **counts, "events": sum(len(v.events) for v, _, _ in jobs)}
