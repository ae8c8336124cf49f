"""Synthetic twins of MSR-VTT, MSVD, LSMDC and ActivityNet Captions: videos of coloured
shapes whose captions can be learnt from pixels.

Each video shows one or more *events*; an event is a coloured shape moving in one direction
("a red circle moves left, then a blue square falls"). Colour, shape, motion and the order of
events are all visible in the frames, so a model trained on these captions measurably beats
chance. Videos are real files written by ffmpeg, and the annotations use each dataset's exact
on-disk format, so the real parsers (:mod:`centerclip.data.parsers`) and everything
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

The paths are those the parsers read (:data:`centerclip.data.layouts.LAYOUTS`).

Test-split videos never share their content, so each test caption has exactly one right
video. Everything is deterministic given the seed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from centerclip.data.activitynet import ACTIVITYNET_BROKEN, ACTIVITYNET_LISTS, ACTIVITYNET_LISTS_DIR
from centerclip.data.layouts import LAYOUTS, MSRVTT_FILES, MSVD_FILES
from centerclip.data.synthetic.captions import Event, activitynet_sentences, lsmdc_sentence, paraphrase
from centerclip.data.synthetic.render import (COLOURS, MOTIONS, SHAPES, SyntheticVideo, render_all, render_frames,
                                              write_video)
from centerclip.util import atomic


# (width, height, fps): landscape, portrait, wide and square sources, as in the wild
FORMATS = ((320, 240, 25), (240, 320, 30), (426, 240, 30), (288, 288, 25), (360, 202, 25))
# The other short twins use fewer frames per second (fewer frames to draw and encode; the
# pipeline resamples everything to 3 fps anyway). MSVD: YouTube clips, mostly 4:3;
# LSMDC: widescreen movie clips.
MSVD_FORMATS = ((320, 240, 15), (240, 320, 15), (426, 240, 12), (320, 240, 12))
LSMDC_FORMATS = ((384, 160, 12), (426, 240, 12), (320, 136, 15))


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

_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _sub_seed(seed: int, *tags: str) -> int:
    """An independent, reproducible seed for one (dataset, split, purpose) stream."""
    words = [int(seed)] + [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in tags]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def _youtube_ids(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    """``n`` distinct 11-character YouTube-style ids (letters, digits, '-' and '_', as the real ones)."""
    ids = []
    while len(ids) < n:
        vid = "".join(_ID_CHARS[i] for i in rng.integers(len(_ID_CHARS), size=11))
        if vid not in taken:
            taken.add(vid)
            ids.append(vid)
    return ids


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
    render_all([(v, root / LAYOUTS["msvd"].video_dir / f"{v.video_id}.avi", _sub_seed(seed, "msvd", v.video_id))
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
                                           _lsmdc_time(end), lsmdc_sentence(v.events, rng)]))
            v = replace(v, video_id=clip_id)
            jobs.append((v, root / layout.video_dir / movie / f"{clip_id}.avi", _sub_seed(seed, "lsmdc", clip_id)))
    render_all(jobs, threads)
    for split, name in layout.files.items():
        atomic.write_text("".join(f"{line}\n" for line in lines[split]), root / layout.annotation_dir / name)
    return {"videos": len(jobs), **sizes, "movies": movies}


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
    render_all(jobs, threads)
    return {"videos": len(jobs), **counts, "events": sum(len(v.events) for v, _, _ in jobs)}
