"""Annotation parsers: each dataset's own files -> one manifest table.

A manifest has one row per (video, caption) with columns ``video_id``, ``split``
(``train``/``test``, MSVD and LSMDC also ``val``), ``caption`` and ``source`` (path of the raw
video). What a row is, per dataset:

- MSR-VTT: one row per caption (train: all captions of the 7k/9k list; test: 1k-A, one each);
- MSVD: one row per caption, ~40 per video, in train, val *and* test (evaluation groups them by video);
- LSMDC: one row per clip (one sentence each);
- ActivityNet Captions: one row per video, the caption being the paragraph = all its sentences
  joined with a single space (train from ``train.json``, test from ``val_1.json``); the
  retrieval window is the whole video, [0, ceil(duration)], so no start/end columns are needed.
  The videos are those the original code keeps (:func:`activitynet_membership`): only those also in
  its id lists and its list of videos, minus the one it drops as broken.

Captions are kept verbatim (html entities, emoji, odd spacing are the tokenizer's business),
but an empty or whitespace-only caption stops the parse: it would silently become a
start+end token pair that matches nothing. Parsers check what they read and stop with an
:class:`AnnotationError` naming the file and line (csv/txt) or key (json/pkl) of the first
malformed entry. They do not look at the videos, except that ActivityNet's source picks the
first existing of ``.mp4``, ``.mkv``, ``.webm``; missing videos are counted later by the
frame-cache stage.

:func:`build_manifest` dispatches on the dataset format with one root per dataset, laid out as
the real downloads unpack (each sub-path can be overridden by an option). :data:`LAYOUTS` states
that layout once, per format; the placement check and its message
(:mod:`centerclip.data.sources`) and the synthetic twins are built from it:

- msrvtt: ``<root>/msrvtt_data/{MSRVTT_data.json, MSRVTT_train.{7k,9k}.csv, MSRVTT_JSFUSION_test.csv}``
  (CLIP4Clip's msrvtt_data.zip) and ``<root>/MSRVTT/videos/all/videoN.mp4`` (MSRVTT.zip);
- msvd: ``<root>/msvd_data/{raw-captions.pkl, train_list.txt, val_list.txt, test_list.txt}``
  (CLIP4Clip's msvd_data.zip) and ``<root>/YouTubeClips/<id>.avi`` (YouTubeClips.tar);
- lsmdc: ``<root>/annotations/{LSMDC16_annos_training.csv, LSMDC16_annos_val.csv,
  LSMDC16_challenge_1000_publictect.csv}`` and ``<root>/videos/<movie>/<clip_id>.avi``, where
  ``<movie>`` is the clip id up to its last ``_`` (as the MPII per-movie archives unpack);
- activitynet: ``<root>/annotations/{train.json, val_1.json}`` and
  ``<root>/videos/v_<id>.{mp4,mkv,webm}``. The official captions.zip unpacks to ``captions/``:
  its ``train.json`` and ``val_1.json`` go into ``annotations/`` (one layout only, no fallback).
  The original code's lists (:data:`ACTIVITYNET_LISTS`) are not placed but downloaded
  (:func:`centerclip.data.sources.download_lists`), by default into ``<root>/original_splits/``.

LSMDC's ``LSMDC16_annos_val.csv`` is optional (read when present; it is never used for training or
the reported test numbers); every other file listed here is required.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from centerclip.util import atomic

if TYPE_CHECKING:
    import pandas as pd
# pandas is imported where a table is made, so that importing the layouts (sources.py, hence the
# Snakefile) stays light.

MANIFEST_COLUMNS = ["video_id", "split", "caption", "source"]

# ---------------------------------------------------------------------------------- layouts
# The one statement of where each dataset's files sit under its root. The parsers below read
# exactly these paths; sources.py builds its placement check (and the message telling the user
# where to put gated files) from them; synthetic.py writes its twins to them.

#: MSR-VTT annotation files (CLIP4Clip's msrvtt_data.zip), by role.
MSRVTT_FILES = {"captions": "MSRVTT_data.json", "train_7k": "MSRVTT_train.7k.csv",
                "train_9k": "MSRVTT_train.9k.csv", "test": "MSRVTT_JSFUSION_test.csv"}
#: MSVD annotation files (CLIP4Clip's msvd_data.zip), by role (the split lists by split name).
MSVD_FILES = {"captions": "raw-captions.pkl", "train": "train_list.txt", "val": "val_list.txt",
              "test": "test_list.txt"}
#: LSMDC annotation files, by split (``val`` optional).
LSMDC_FILES = {"train": "LSMDC16_annos_training.csv", "val": "LSMDC16_annos_val.csv",
               "test": "LSMDC16_challenge_1000_publictect.csv"}
#: ActivityNet Captions annotation files, by split (``val_1.json`` is the retrieval test split).
ACTIVITYNET_FILES = {"train": "train.json", "test": "val_1.json"}
#: The original CenterCLIP code's ActivityNet lists, by role: the ids (``v_<id>``) of each split, and the
#: videos it had (``<id>`` without ``v_`` -> its file name). Published in its repository under
#: :data:`ACTIVITYNET_LISTS_URL`; its loader (dataloaders/dataloader_activitynet_retrieval.py) keeps a
#: video only when it is in all three of a split's id list, caption file and video list.
ACTIVITYNET_LISTS = {"train": "train_ids.json", "test": "val_ids.json", "videos": "video_path.json"}
ACTIVITYNET_LISTS_URL = ("https://raw.githubusercontent.com/mzhaoshuai/CenterCLIP/"
                         "886fe7342956f361c9c7b93f82d05c7ec5ed677b/misc/splits/activitynet/")
#: Where the lists sit under a dataset root unless a ``lists_dir`` is given.
ACTIVITYNET_LISTS_DIR = "original_splits"
#: The videos that loader drops as broken, whatever the lists say.
ACTIVITYNET_BROKEN = ("v_NHznDFD3V3k",)


@dataclass(frozen=True)
class Layout:
    """Where one dataset's files sit under its root, as :func:`build_manifest` reads them.

    ``annotation_dir`` and ``video_dir`` are ``/``-separated paths relative to the root; ``files``
    maps a role (split, ...) to a file name in ``annotation_dir``; the roles in ``optional`` are
    read when present and skipped otherwise; ``videos`` describes the video files inside
    ``video_dir`` (for messages).
    """

    annotation_dir: str
    files: Mapping[str, str]
    video_dir: str
    videos: str
    optional: frozenset[str] = field(default_factory=frozenset)

    def annotation_path(self, role: str) -> str:
        """Path of the ``role`` file relative to the root."""
        return f"{self.annotation_dir}/{self.files[role]}"


#: Per dataset format: the layout its parser reads.
LAYOUTS: dict[str, Layout] = {
    "msrvtt": Layout("msrvtt_data", MSRVTT_FILES, "MSRVTT/videos/all", "videoN.mp4"),
    "msvd": Layout("msvd_data", MSVD_FILES, "YouTubeClips", "<id>.avi"),
    "lsmdc": Layout("annotations", LSMDC_FILES, "videos",
                    "<movie>/<clip_id>.avi, <movie> being the clip id up to its last '_'",
                    optional=frozenset({"val"})),
    "activitynet": Layout("annotations", ACTIVITYNET_FILES, "videos", "v_<id>.mp4 (.mkv and .webm too)"),
}
ACTIVITYNET_CAPTIONS_ZIP = ("captions.zip from https://cs.stanford.edu/people/ranjaykrishna/densevid/, "
                            "which unpacks to captions/")


class AnnotationError(ValueError):
    """A malformed or missing annotation file; the message names the file (and line)."""


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


def _caption_or_error(caption: str, where: str) -> str:
    if not caption.strip():
        raise AnnotationError(f"{where}: empty caption; fix or remove it (an empty caption matches nothing)")
    return caption


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
        captions[str(vid)] = [_caption_or_error(" ".join(c), f"{path}: [{vid!r}][{k}]") for k, c in enumerate(caps)]
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
            source = str(videos / f"{vid}.avi")
            rows += [(vid, split, c, source) for c in captions[vid]]
    return _frame(rows, ann)


# --------------------------------------------------------------------------------------- LSMDC


def lsmdc_movie(clip_id: str) -> str:
    """The movie folder of an LSMDC clip: the clip id up to its last ``_``."""
    return clip_id.rsplit("_", 1)[0]


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
                out.append((clip_id, _caption_or_error(fields[5], f"{path}:{line_no}")))
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

ACTIVITYNET_EXTENSIONS = (".mp4", ".mkv", ".webm")


def _activitynet_paragraph(path: Path, key: str, entry: object) -> str:
    """Check one ``v_<id>`` entry and return its paragraph (sentences joined by one space)."""
    where = f"{path}: [{key!r}]"
    if not isinstance(entry, dict):
        raise AnnotationError(f"{where}: expected an object with duration, timestamps, sentences")
    for field in ("duration", "timestamps", "sentences"):
        if field not in entry:
            raise AnnotationError(f"{where}: no {field!r}")
    duration, stamps, sentences = entry["duration"], entry["timestamps"], entry["sentences"]
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not math.isfinite(duration) \
            or duration <= 0:
        raise AnnotationError(f"{where}: duration must be a positive number, got {duration!r}")
    if not isinstance(sentences, list) or not sentences or not all(isinstance(x, str) for x in sentences):
        raise AnnotationError(f"{where}: sentences must be a non-empty list of strings")
    if not isinstance(stamps, list) or not all(
            isinstance(t, (list, tuple)) and len(t) == 2 and all(isinstance(x, (int, float)) for x in t)
            for t in stamps):
        raise AnnotationError(f"{where}: timestamps must be a list of [start, end] pairs")
    if len(stamps) != len(sentences):
        raise AnnotationError(f"{where}: {len(stamps)} timestamps but {len(sentences)} sentences")
    return _caption_or_error(" ".join(sentences), where)


def _read_json(path: Path, missing: str) -> object:
    """The JSON in ``path``; :class:`AnnotationError` "<path>: <missing>" when it is absent."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"{path}: {missing}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not JSON ({exc})") from None


def _activitynet_paragraphs(ann: Path) -> dict[str, dict[str, str]]:
    """Split -> {``v_<id>``: paragraph} of every entry of ``train.json`` and ``val_1.json``, each checked."""
    out = {}
    for split, name in ACTIVITYNET_FILES.items():
        path = ann / name
        unpacked = ann.parent / "captions" / name
        hint = f" ({unpacked} exists: move it here)" if unpacked.is_file() else ""
        data = _read_json(path, f"missing{hint}; it comes with the ActivityNet Captions annotations "
                                f"({ACTIVITYNET_CAPTIONS_ZIP}: put its {name} here)")
        if not isinstance(data, dict):
            raise AnnotationError(f"{path}: expected a dict v_<id> -> {{duration, timestamps, sentences}}")
        out[split] = {key: _activitynet_paragraph(path, key, entry) for key, entry in data.items()}
    return out


def _check_lists(lists_dir: Path) -> None:
    """One :class:`AnnotationError` naming every absent list of the original code and how to get it."""
    missing = [str(lists_dir / name) for name in ACTIVITYNET_LISTS.values() if not (lists_dir / name).is_file()]
    if missing:
        raise AnnotationError(
            f"ActivityNet Captions: the original CenterCLIP code's split lists are missing: {', '.join(missing)}. "
            f"They decide which videos each split holds and are public ({ACTIVITYNET_LISTS_URL}<name>): the "
            f"workflow downloads them (rule download_lists); from Python, "
            f"centerclip.data.sources.download_lists('activitynet', '{lists_dir}')")


def _read_id_list(path: Path) -> list[str]:
    """The distinct ``v_<id>`` of an id list (a JSON list), in its order; the original skips repeats too."""
    ids = _read_json(path, "missing")
    if not isinstance(ids, list):
        raise AnnotationError(f"{path}: expected a JSON list of ids 'v_<youtube id>'")
    for i, vid in enumerate(ids):
        if not isinstance(vid, str) or not vid.startswith("v_"):
            raise AnnotationError(f"{path}: [{i}]: expected an id 'v_<youtube id>', found {vid!r}")
    return list(dict.fromkeys(ids))


@dataclass(frozen=True)
class SplitMembership:
    """One split of :class:`ActivityNetMembership`: the videos kept, in the order of the original's id
    list, and the videos of the id list or the caption file left out, by reason."""

    kept: tuple[str, ...]
    listed: Mapping[str, int]  # file name -> how many distinct videos it names
    left_out: Mapping[str, tuple[str, ...]]  # reason -> videos (sorted)


@dataclass(frozen=True)
class ActivityNetMembership:
    """Which ActivityNet videos each split holds, as the original code decides it."""

    splits: Mapping[str, SplitMembership]

    def record(self) -> dict:
        """A JSON-ready record: per split the videos kept, the size of each list, and how many videos
        were left out and why (with their ids)."""
        return {"rule": _MEMBERSHIP_RULE,
                **{split: {"kept": len(m.kept), "listed": dict(m.listed),
                           "left_out": {reason: len(v) for reason, v in m.left_out.items()},
                           "left_out_videos": {reason: list(v) for reason, v in m.left_out.items()}}
                   for split, m in self.splits.items()}}

    def summary(self) -> str:
        """One line: per split, the videos kept and how many were left out for each reason."""
        parts = []
        for split, m in self.splits.items():
            why = "; ".join(f"{len(v)} {reason}" for reason, v in m.left_out.items() if v) or "none"
            parts.append(f"{split} {len(m.kept)} videos (left out: {why})")
        return "ActivityNet Captions, the original code's membership: " + ", ".join(parts)


_MEMBERSHIP_RULE = ("a split keeps the videos of the original CenterCLIP code's id list that are also in the "
                    "caption file and in its video_path.json, minus the one it drops as broken "
                    "(github.com/mzhaoshuai/CenterCLIP, commit 886fe73, "
                    "dataloaders/dataloader_activitynet_retrieval.py)")


def _split_membership(ids: list[str], captioned: Mapping[str, str], had: set[str], id_file: str,
                      caption_file: str) -> SplitMembership:
    """Keep the ids also captioned and in ``had`` (ids without ``v_``); every other video of either list
    gets the first reason that applies."""
    reasons = {"broken": f"dropped as broken by the original ({', '.join(ACTIVITYNET_BROKEN)})",
               "uncaptioned": f"in {id_file}, not in {caption_file}",
               "unlisted": f"in {caption_file}, not in {id_file}",
               "no_video": f"in both, not in {ACTIVITYNET_LISTS['videos']} (the original had no such video)"}
    listed = set(ids)
    left: dict[str, list[str]] = {r: [] for r in reasons}
    kept = []
    for vid in [*ids, *(k for k in captioned if k not in listed)]:
        if vid in ACTIVITYNET_BROKEN:
            left["broken"].append(vid)
        elif vid not in captioned:
            left["uncaptioned"].append(vid)
        elif vid not in listed:
            left["unlisted"].append(vid)
        elif vid[2:] not in had:  # video_path.json names the video without its "v_", as the original strips it
            left["no_video"].append(vid)
        else:
            kept.append(vid)
    return SplitMembership(tuple(kept), {id_file: len(ids), caption_file: len(captioned)},
                           {reasons[r]: tuple(sorted(v)) for r, v in left.items()})


def _membership(paragraphs: Mapping[str, Mapping[str, str]], lists_dir: Path) -> ActivityNetMembership:
    _check_lists(lists_dir)
    video_path = lists_dir / ACTIVITYNET_LISTS["videos"]
    had = _read_json(video_path, "missing")
    if not isinstance(had, dict):
        raise AnnotationError(f"{video_path}: expected a dict <youtube id> -> video file name")
    splits = {}
    for split, caption_file in ACTIVITYNET_FILES.items():
        ids = _read_id_list(lists_dir / ACTIVITYNET_LISTS[split])
        m = _split_membership(ids, paragraphs[split], set(had), ACTIVITYNET_LISTS[split], caption_file)
        if not m.kept:  # e.g. lists of another dataset, or ids compared with the wrong prefix
            raise AnnotationError(f"{lists_dir / ACTIVITYNET_LISTS[split]}: none of its {len(ids)} videos is also "
                                  f"in {caption_file} and in {video_path}")
        splits[split] = m
    return ActivityNetMembership(splits)


def _lists_dir(annotation_dir: Path, lists_dir: str | os.PathLike | None) -> Path:
    # the default: beside annotations/ under the dataset root
    return Path(lists_dir) if lists_dir is not None else annotation_dir.parent / ACTIVITYNET_LISTS_DIR


def activitynet_membership(annotation_dir: str | os.PathLike,
                           lists_dir: str | os.PathLike | None = None) -> ActivityNetMembership:
    """Which videos of ``train.json`` / ``val_1.json`` the original code trains and tests on: those also in
    its id list of the split (``train_ids.json`` / ``val_ids.json``, ids ``v_<id>``) and in its
    ``video_path.json`` (ids without ``v_``), minus :data:`ACTIVITYNET_BROKEN`. ``lists_dir``: the folder of
    the three lists (default ``<annotation_dir>/../original_splits``); a missing list stops with its path
    and where it is obtained."""
    ann = Path(annotation_dir)
    return _membership(_activitynet_paragraphs(ann), _lists_dir(ann, lists_dir))


def activitynet_manifest(annotation_dir: str | os.PathLike, video_root: str | os.PathLike,
                         lists_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Manifest of ActivityNet Captions for paragraph-to-video retrieval: one row per video of
    :func:`activitynet_membership` (train from ``train.json``, test from ``val_1.json``, in the order of
    the original's id lists); the caption is the paragraph (all sentences joined with a single space), the
    source ``<video_root>/v_<id>`` with the first of ``.mp4``, ``.mkv``, ``.webm`` that exists (``.mp4``
    when none does: a missing video is found and listed by the frame-cache stage, never dropped here).
    """
    ann, videos = Path(annotation_dir), Path(video_root)
    paragraphs = _activitynet_paragraphs(ann)
    membership = _membership(paragraphs, _lists_dir(ann, lists_dir))
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

FORMATS = tuple(LAYOUTS)


def build_manifest(format: str, root: str | os.PathLike, **options) -> pd.DataFrame:
    """Manifest of the dataset of ``format`` (msrvtt | msvd | lsmdc | activitynet) laid out under
    ``root`` as described in this module's docstring.

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


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest` (captions stay strings, even empty)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(MANIFEST_COLUMNS) - set(frame.columns)
    if missing:
        raise AnnotationError(f"{path}: not a manifest, missing columns {sorted(missing)}")
    return frame


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the manifest columns of ``frame`` as CSV, atomically (read back by :func:`read_manifest`)."""
    with atomic.path(path) as tmp:
        frame[MANIFEST_COLUMNS].to_csv(tmp, index=False)
