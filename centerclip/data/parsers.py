"""Annotation parsers: each dataset's own files -> one manifest table (:mod:`centerclip.data.layouts`).

What a manifest row is, per dataset:

- MSR-VTT: one row per caption (train: all captions of the 7k/9k list; test: 1k-A, one each);
- MSVD: one row per caption, ~40 per video, in train, val *and* test (evaluation groups them by video);
- LSMDC: one row per clip (one sentence each);
- ActivityNet Captions: one row per video, the caption being the paragraph = all its sentences
  joined with a single space (train from ``train.json``, test from ``val_1.json``); the
  retrieval window is the whole video, [0, ceil(duration)], so no start/end columns are needed.
  The videos are those the original code keeps (:func:`centerclip.data.activitynet.activitynet_membership`):
  only those also in its id lists and its list of videos, minus the one it drops as broken.

Captions are kept verbatim (html entities, emoji, odd spacing are the tokenizer's business),
but an empty or whitespace-only caption stops the parse (:func:`~centerclip.data.layouts.check_caption`).
Parsers check what they read and stop with an :class:`~centerclip.data.layouts.AnnotationError` naming
the file and line (csv/txt) or key (json/pkl) of the first malformed entry. They do not look at the
videos, except that ActivityNet's raw path picks the first existing of ``.mp4``, ``.mkv``, ``.webm``;
missing videos are counted later by the frame-cache stage.

:func:`build_manifest` dispatches on the dataset format with one root per dataset, laid out as
:data:`centerclip.data.layouts.LAYOUTS` states (each sub-path can be overridden by an option).
"""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from centerclip.data.activitynet import (ACTIVITYNET_LISTS_DIR, activitynet_paragraphs, lists_dir_of,
                                         membership_of)
from centerclip.data.layouts import (ACTIVITYNET_EXTENSIONS, FORMATS, LAYOUTS, LSMDC_FILES, MANIFEST_COLUMNS,
                                     MSRVTT_FILES, MSVD_FILES, AnnotationError, check_caption, lsmdc_movie)

if TYPE_CHECKING:
    import pandas as pd


# -------------------------------------------------------------------------------------- MSR-VTT

def _read_id_list_csv(path: Path) -> list[str]:
    if not path.is_file():
        raise AnnotationError(f"{path}: missing; it comes with the MSR-VTT captions/splits archive")
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or header[0].strip() != "video_id":
            raise AnnotationError(f"{path}:1: expected header 'video_id', found {header!r}")
        ids = []
        for line_no, row in enumerate(reader, start=2):
            if not row or not row[0].strip():
                raise AnnotationError(f"{path}:{line_no}: empty video id")
            ids.append(row[0].strip())
    return ids


def msrvtt_manifest(annotation_dir: str | os.PathLike, video_dir: str | os.PathLike,
                    train_split: str = "9k") -> pd.DataFrame:
    """Manifest of MSR-VTT: training videos of ``train_split`` (``7k`` or ``9k``) with all their
    captions from ``MSRVTT_data.json``, and the 1k-A test set with its one caption per video
    from ``MSRVTT_JSFUSION_test.csv``.
    """
    ann, videos = Path(annotation_dir), Path(video_dir)
    if train_split not in ("7k", "9k"):
        raise AnnotationError(f"MSR-VTT train_split must be '7k' or '9k', got {train_split!r}")
    train_ids = _read_id_list_csv(ann / MSRVTT_FILES[f"train_{train_split}"])

    data_path = ann / MSRVTT_FILES["captions"]
    try:
        data = json.loads(data_path.read_text())
        sentences = data["sentences"]
    except FileNotFoundError:
        raise AnnotationError(f"{data_path}: missing; it comes with the MSR-VTT captions/splits archive") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AnnotationError(f"{data_path}: not MSR-VTT annotations ({exc!r})") from None
    captions: dict[str, list[str]] = {}
    for i, s in enumerate(sentences):
        if not isinstance(s, dict) or "video_id" not in s or "caption" not in s:
            raise AnnotationError(f"{data_path}: sentences[{i}] lacks video_id/caption: {s!r}")
        if not str(s["caption"]).strip():
            raise AnnotationError(f"{data_path}: sentences[{i}] (video {s['video_id']}): empty caption")
        captions.setdefault(s["video_id"], []).append(str(s["caption"]))

    rows = []
    for vid in train_ids:
        if vid not in captions:
            raise AnnotationError(f"{data_path}: training video {vid} has no caption")
        rows += [(vid, "train", c, str(videos / f"{vid}.mp4")) for c in captions[vid]]

    test_path = ann / MSRVTT_FILES["test"]
    if not test_path.is_file():
        raise AnnotationError(f"{test_path}: missing; it comes with the MSR-VTT captions/splits archive")
    with open(test_path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"video_id", "sentence"} <= set(reader.fieldnames):
            raise AnnotationError(f"{test_path}:1: expected header key,vid_key,video_id,sentence, "
                                  f"found {reader.fieldnames!r}")
        for line_no, row in enumerate(reader, start=2):
            vid, sentence = (row.get("video_id") or "").strip(), row.get("sentence")
            if not vid or sentence is None:
                raise AnnotationError(f"{test_path}:{line_no}: missing video_id or sentence")
            if not sentence.strip():
                raise AnnotationError(f"{test_path}:{line_no}: empty caption for {vid}")
            rows.append((vid, "test", sentence, str(videos / f"{vid}.mp4")))
    return _frame(rows, test_path)


def _frame(rows: list[tuple[str, str, str, str]], where: Path) -> pd.DataFrame:
    """The manifest of ``rows``, refusing a video that sits in two splits (a leak between them)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    splits = list(dict.fromkeys(frame.split))
    for i, a in enumerate(splits):
        for b in splits[i + 1:]:
            overlap = set(frame.video_id[frame.split == a]) & set(frame.video_id[frame.split == b])
            if overlap:
                raise AnnotationError(f"{where}: {b} videos also in the {a} split: {sorted(overlap)[:5]}")
    return frame


# ---------------------------------------------------------------------------------------- MSVD

def _read_id_list_txt(path: Path) -> list[tuple[int, str]]:
    """(line number, id) of a one-id-per-line split list; blank lines are skipped."""
    if not path.is_file():
        raise AnnotationError(f"{path}: missing; it comes with the MSVD captions/splits archive (msvd_data.zip)")
    out, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            vid = line.strip()
            if not vid:
                continue
            if vid in seen:
                raise AnnotationError(f"{path}:{line_no}: {vid} already listed on line {seen[vid]}")
            seen[vid] = line_no
            out.append((line_no, vid))
    return out


def _load_msvd_captions(path: Path) -> dict[str, list[str]]:
    """``raw-captions.pkl``: dict id -> list of token lists; returns id -> captions (tokens joined by spaces)."""
    if not path.is_file():
        raise AnnotationError(f"{path}: missing; it comes with the MSVD captions/splits archive (msvd_data.zip)")
    try:
        with open(path, "rb") as f:
            data = pickle.load(f)  # the user's own annotation file, as CLIP4Clip ships it
    except Exception as exc:  # any unpickling failure means: not the file we expect
        raise AnnotationError(f"{path}: not a readable pickle ({exc!r})") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a dict video id -> list of token lists, got {type(data).__name__}")
    captions: dict[str, list[str]] = {}
    for vid, caps in data.items():
        if not isinstance(caps, (list, tuple)) or not all(
                isinstance(c, (list, tuple)) and all(isinstance(t, str) for t in c) for c in caps):
            raise AnnotationError(f"{path}: [{vid!r}]: expected a list of token lists (lists of str), "
                                  f"got {str(caps)[:80]}")
        captions[str(vid)] = [check_caption(" ".join(c), f"{path}: [{vid!r}][{k}]") for k, c in enumerate(caps)]
    return captions


def msvd_manifest(root: str | os.PathLike, annotation_dir: str | os.PathLike | None = None,
                  video_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Manifest of MSVD: every caption of every video in ``train_list.txt``, ``val_list.txt``
    and ``test_list.txt`` (splits train/val/test), one row per caption.

    Layout: ``<root>/msvd_data/{raw-captions.pkl, *_list.txt}`` and ``<root>/YouTubeClips/<id>.avi``
    (``annotation_dir`` / ``video_dir`` override the two folders).
    """
    root, layout = Path(root), LAYOUTS["msvd"]
    ann = Path(annotation_dir) if annotation_dir is not None else root / layout.annotation_dir
    videos = Path(video_dir) if video_dir is not None else root / layout.video_dir
    captions_path = ann / MSVD_FILES["captions"]
    captions = _load_msvd_captions(captions_path)
    rows = []
    for split in ("train", "val", "test"):
        list_path = ann / MSVD_FILES[split]
        for line_no, vid in _read_id_list_txt(list_path):
            if not captions.get(vid):
                raise AnnotationError(f"{list_path}:{line_no}: {vid} has no caption in {captions_path}")
            raw_path = str(videos / f"{vid}.avi")
            rows += [(vid, split, c, raw_path) for c in captions[vid]]
    return _frame(rows, ann)


# --------------------------------------------------------------------------------------- LSMDC

def _read_lsmdc_file(path: Path) -> list[tuple[str, str]]:
    """(clip id, sentence) of each line of a tab-separated, header-less LSMDC annotation file."""
    out = []
    try:
        with open(path, encoding="utf-8", newline="\n") as f:  # a stray \\r is text, not a line end
            for line_no, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) != 6:
                    raise AnnotationError(
                        f"{path}:{line_no}: expected 6 tab-separated columns (clip_id, start_aligned, "
                        f"end_aligned, start_extracted, end_extracted, sentence), found {len(fields)}")
                clip_id = fields[0].strip()
                if "_" not in clip_id:
                    raise AnnotationError(f"{path}:{line_no}: clip id {clip_id!r} is not <movie>_<start>-<end>")
                out.append((clip_id, check_caption(fields[5], f"{path}:{line_no}")))
    except UnicodeDecodeError as exc:
        raise AnnotationError(f"{path}: not UTF-8 text ({exc})") from None
    return out


def lsmdc_manifest(annotation_dir: str | os.PathLike, video_root: str | os.PathLike) -> pd.DataFrame:
    """Manifest of LSMDC: one row per clip of ``LSMDC16_annos_training.csv`` (train),
    ``LSMDC16_annos_val.csv`` (val; optional) and ``LSMDC16_challenge_1000_publictect.csv``
    (test). Clip ``<movie>_<times>`` is ``<video_root>/<movie>/<movie>_<times>.avi``.
    """
    ann, videos = Path(annotation_dir), Path(video_root)
    rows = []
    for split, name in LSMDC_FILES.items():
        path = ann / name
        if not path.is_file():
            if split in LAYOUTS["lsmdc"].optional:  # val: never used for training or the reported test numbers
                continue
            raise AnnotationError(f"{path}: missing; LSMDC is licence-gated: request access at "
                                  "https://sites.google.com/site/describingmovies/ and place the file here")
        rows += [(cid, split, sentence, str(videos / lsmdc_movie(cid) / f"{cid}.avi"))
                 for cid, sentence in _read_lsmdc_file(path)]
    return _frame(rows, ann)


# --------------------------------------------------------------------------------- ActivityNet

def activitynet_manifest(annotation_dir: str | os.PathLike, video_root: str | os.PathLike,
                         lists_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Manifest of ActivityNet Captions for paragraph-to-video retrieval: one row per video of
    :func:`centerclip.data.activitynet.activitynet_membership` (train from ``train.json``, test from
    ``val_1.json``, in the order of the original's id lists); the caption is the paragraph (all sentences
    joined with a single space), the raw path ``<video_root>/v_<id>`` with the first of ``.mp4``, ``.mkv``,
    ``.webm`` that exists (``.mp4`` when none does: a missing video is found and listed by the frame-cache
    stage, never dropped here).
    """
    ann, videos = Path(annotation_dir), Path(video_root)
    paragraphs = activitynet_paragraphs(ann)
    membership = membership_of(paragraphs, lists_dir_of(ann, lists_dir))
    try:
        present = {e.name for e in os.scandir(videos) if e.is_file()}
    except OSError:
        present = set()
    rows = []
    for split, m in membership.splits.items():
        for key in m.kept:
            ext = next((e for e in ACTIVITYNET_EXTENSIONS if f"{key}{e}" in present), ".mp4")
            rows.append((key, split, paragraphs[split][key], str(videos / f"{key}{ext}")))
    return _frame(rows, ann)


# ---------------------------------------------------------------------------------- dispatcher

def build_manifest(format: str, root: str | os.PathLike, **options) -> pd.DataFrame:
    """Manifest of the dataset of ``format`` (msrvtt | msvd | lsmdc | activitynet) laid out under
    ``root`` as :data:`centerclip.data.layouts.LAYOUTS` states.

    Options: ``annotation_dir`` and ``video_dir`` override the two sub-folders (absolute, or
    relative to the working directory); msrvtt also takes ``train_split`` (``7k``/``9k``), activitynet
    ``lists_dir``, the folder of the original code's lists (default ``<root>/original_splits``).
    """
    root = Path(root)
    extra = {"msrvtt": {"train_split"}, "activitynet": {"lists_dir"}}
    allowed = {"annotation_dir", "video_dir"} | extra.get(format, set())
    unknown = set(options) - allowed
    if format not in FORMATS:
        raise AnnotationError(f"unknown dataset format {format!r}; expected one of {', '.join(FORMATS)}")
    if unknown:
        raise AnnotationError(f"{format}: unknown manifest option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    layout = LAYOUTS[format]
    ann = options.get("annotation_dir") or root / layout.annotation_dir
    vids = options.get("video_dir") or root / layout.video_dir
    if format == "msrvtt":
        return msrvtt_manifest(ann, vids, options.get("train_split", "9k"))
    if format == "msvd":
        return msvd_manifest(root, ann, vids)
    if format == "lsmdc":
        return lsmdc_manifest(ann, vids)
    return activitynet_manifest(ann, vids, options.get("lists_dir") or root / ACTIVITYNET_LISTS_DIR)
