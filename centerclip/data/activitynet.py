"""ActivityNet Captions: its caption files as paragraphs, and which videos each split holds.

The videos of a split are those the original CenterCLIP code keeps (:func:`activitynet_membership`):
only those also in its id list of the split (``train_ids.json`` / ``val_ids.json``) and its list of
videos (``video_path.json``), minus the one it drops as broken (:data:`ACTIVITYNET_BROKEN`). Those
lists are public (:data:`ACTIVITYNET_LISTS_URL`), downloaded by the workflow, not placed by the user.

A video's caption is its paragraph: all its sentences joined with a single space (train from
``train.json``, test from ``val_1.json``); each entry is checked and a malformed one stops with an
:class:`~centerclip.data.layouts.AnnotationError` naming the file and key. The manifest itself is
made by :func:`centerclip.data.parsers.activitynet_manifest`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from centerclip.data.layouts import ACTIVITYNET_CAPTIONS_ZIP, ACTIVITYNET_FILES, AnnotationError, check_caption

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


# ------------------------------------------------------------------------------- caption files

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
    return check_caption(" ".join(sentences), where)


def _read_json(path: Path, missing: str) -> object:
    """The JSON in ``path``; :class:`AnnotationError` "<path>: <missing>" when it is absent."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"{path}: {missing}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path}: not JSON ({exc})") from None


def activitynet_paragraphs(annotation_dir: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Split -> {``v_<id>``: paragraph} of every entry of ``train.json`` and ``val_1.json`` in
    ``annotation_dir``, each checked."""
    ann = Path(annotation_dir)
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


# ------------------------------------------------------------------------ the original's lists

def _check_lists(lists_dir: Path) -> None:
    """One :class:`AnnotationError` naming every absent list of the original code and how to get it."""
    missing = [str(lists_dir / name) for name in ACTIVITYNET_LISTS.values() if not (lists_dir / name).is_file()]
    if missing:
        raise AnnotationError(
            f"ActivityNet Captions: the original CenterCLIP code's split lists are missing: {', '.join(missing)}. "
            f"They decide which videos each split holds and are public ({ACTIVITYNET_LISTS_URL}<name>): the "
            f"workflow downloads them (rule download_lists); from Python, "
            f"centerclip.data.upstreams.download_lists('activitynet', '{lists_dir}')")


def _read_id_list(path: Path) -> list[str]:
    """The distinct ``v_<id>`` of an id list (a JSON list), in its order; the original skips repeats too."""
    ids = _read_json(path, "missing")
    if not isinstance(ids, list):
        raise AnnotationError(f"{path}: expected a JSON list of ids 'v_<youtube id>'")
    for i, vid in enumerate(ids):
        if not isinstance(vid, str) or not vid.startswith("v_"):
            raise AnnotationError(f"{path}: [{i}]: expected an id 'v_<youtube id>', found {vid!r}")
    return list(dict.fromkeys(ids))


# ---------------------------------------------------------------------------------- membership

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


def membership_of(paragraphs: Mapping[str, Mapping[str, str]], lists_dir: str | os.PathLike) -> ActivityNetMembership:
    """The membership of the captioned videos ``paragraphs`` (split -> {``v_<id>``: paragraph}, as
    :func:`activitynet_paragraphs` reads them) under the original's lists in ``lists_dir``; a missing
    list stops with its path and where it is obtained."""
    lists_dir = Path(lists_dir)
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


def lists_dir_of(annotation_dir: str | os.PathLike, lists_dir: str | os.PathLike | None) -> Path:
    """``lists_dir``, or by default :data:`ACTIVITYNET_LISTS_DIR` beside ``annotation_dir`` under the
    dataset root."""
    return Path(lists_dir) if lists_dir is not None else Path(annotation_dir).parent / ACTIVITYNET_LISTS_DIR


def activitynet_membership(annotation_dir: str | os.PathLike,
                           lists_dir: str | os.PathLike | None = None) -> ActivityNetMembership:
    """Which videos of ``train.json`` / ``val_1.json`` the original code trains and tests on: those also in
    its id list of the split (``train_ids.json`` / ``val_ids.json``, ids ``v_<id>``) and in its
    ``video_path.json`` (ids without ``v_``), minus :data:`ACTIVITYNET_BROKEN`. ``lists_dir``: the folder of
    the three lists (default ``<annotation_dir>/../original_splits``); a missing list stops with its path
    and where it is obtained."""
    return membership_of(activitynet_paragraphs(annotation_dir), lists_dir_of(annotation_dir, lists_dir))
