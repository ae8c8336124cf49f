"""Annotation parsers: each dataset's own files -> one manifest table.

A manifest has one row per (video, caption) with columns ``video_id``, ``split``
(``train``/``test``), ``caption`` and ``source`` (path of the raw video). Parsers check
what they read and stop with the file and line of the first malformed row.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pandas as pd

MANIFEST_COLUMNS = ["video_id", "split", "caption", "source"]


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
    train_ids = _read_id_list_csv(ann / f"MSRVTT_train.{train_split}.csv")

    data_path = ann / "MSRVTT_data.json"
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
        captions.setdefault(s["video_id"], []).append(str(s["caption"]))

    rows = []
    for vid in train_ids:
        if vid not in captions:
            raise AnnotationError(f"{data_path}: training video {vid} has no caption")
        rows += [(vid, "train", c, str(videos / f"{vid}.mp4")) for c in captions[vid]]

    test_path = ann / "MSRVTT_JSFUSION_test.csv"
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
            rows.append((vid, "test", sentence, str(videos / f"{vid}.mp4")))
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    overlap = set(frame.video_id[frame.split == "train"]) & set(frame.video_id[frame.split == "test"])
    if overlap:
        raise AnnotationError(f"{test_path}: test videos also in the training list: {sorted(overlap)[:5]}")
    return frame


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest written by :func:`write_manifest` (captions stay strings, even empty)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(MANIFEST_COLUMNS) - set(frame.columns)
    if missing:
        raise AnnotationError(f"{path}: not a manifest, missing columns {sorted(missing)}")
    return frame


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame[MANIFEST_COLUMNS].to_csv(tmp, index=False)
    os.replace(tmp, path)
