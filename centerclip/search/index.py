"""The search index: one HDF5 file of video embeddings, and the plan of an incremental update.

Layout (h5py), entries sorted by path::

    attrs      format = "centerclip-search-index", format_version = 1, model_sha256, model_path,
               model_kind, reduction, num_frames, context_length, embed_dim, videos_root, fps, size,
               weights_sha256 (sha256 of the weights file: for a released zip, of its ckpt.best.pth.tar)
    /videos/   path vlen str [N] (POSIX, relative to videos_root), size int64 [N], mtime_ns int64 [N],
               duration float64 [N], frames_used int32 [N], embedding float32 [N, E] (L2-normalised),
               thumbnails vlen uint8 [N] (one JPEG strip each)
    /failed/   path, reason vlen str [M], size, mtime_ns int64 [M]

A video is recognised as unchanged by (path, size, mtime_ns); an unchanged video keeps its row as it
was (bit for bit), an unchanged failure is not retried. The file is always written whole under a
temporary name and renamed (:mod:`centerclip.util.atomic`), so a killed run leaves the old index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from centerclip.search.checkpoints import ModelIdentity
from centerclip.search.errors import SearchError
from centerclip.search.videos import VideoFile
from centerclip.util import atomic

FORMAT = "centerclip-search-index"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One indexed video."""

    path: str
    size: int
    mtime_ns: int
    duration: float
    frames_used: int
    embedding: np.ndarray  # float32 [E], L2-normalised
    thumbnail: bytes  # JPEG


@dataclass(frozen=True)
class Failure:
    """One video that could not be read, with why; kept (not retried) while its size and mtime stay."""

    path: str
    reason: str
    size: int
    mtime_ns: int


@dataclass
class Index:
    """An index file's contents: ``attrs`` as stored, entries and failures sorted by path."""

    attrs: dict
    entries: list[Entry] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)

    @property
    def embeddings(self) -> np.ndarray:
        """float32 [N, E]: the entries' embeddings in order."""
        e = int(self.attrs.get("embed_dim", 0))
        return np.stack([x.embedding for x in self.entries]) if self.entries else np.zeros((0, e), np.float32)


def _strings(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _attr(value):
    """An HDF5 attribute as a plain Python value (h5py returns numpy scalars and, sometimes, bytes)."""
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value


def _checked_attrs(path: Path, f: h5py.File) -> dict:
    attrs = {k: _attr(v) for k, v in f.attrs.items()}
    if attrs.get("format") != FORMAT:
        raise SearchError(f"{path} is not a centerclip-search index (an HDF5 file whose 'format' attribute is "
                          f"{attrs.get('format')!r}, not {FORMAT!r})")
    if attrs.get("format_version") != FORMAT_VERSION:
        raise SearchError(f"{path}: index format version {attrs.get('format_version')} is not "
                          f"{FORMAT_VERSION}, the one this version reads; rebuild it with a new --index path")
    return attrs


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise SearchError(f"index {path} does not exist" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise SearchError(f"{path} is not a centerclip-search index (not an HDF5 file: {exc})") from None


def read_attrs(path: str | os.PathLike) -> dict:
    """The attributes of the index at ``path`` (cheap: no dataset is read); :class:`SearchError` naming
    the file when it is missing or not an index."""
    path = Path(path)
    with _open(path) as f:
        return _checked_attrs(path, f)


def read_index(path: str | os.PathLike, with_thumbnails: bool = True) -> Index:
    """The index at ``path``; :class:`SearchError` naming the file when it is missing or not an index.
    ``with_thumbnails=False`` leaves every thumbnail empty (a query without a page needs none)."""
    path = Path(path)
    try:
        with _open(path) as f:
            attrs = _checked_attrs(path, f)
            v, b = f["videos"], f["failed"]
            thumbs = v["thumbnails"][()] if with_thumbnails else [np.zeros(0, np.uint8)] * len(v["path"])
            entries = [Entry(p, int(s), int(m), float(d), int(n), e, bytes(t))
                       for p, s, m, d, n, e, t in zip(_strings(v["path"][()]), v["size"][()], v["mtime_ns"][()],
                                                      v["duration"][()], v["frames_used"][()],
                                                      v["embedding"][()].astype(np.float32, copy=False), thumbs)]
            failed = [Failure(p, r, int(s), int(m))
                      for p, r, s, m in zip(_strings(b["path"][()]), _strings(b["reason"][()]), b["size"][()],
                                            b["mtime_ns"][()])]
    except SearchError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise SearchError(f"{path} is not a readable centerclip-search index ({exc})") from None
    return Index(attrs, entries, failed)


def index_attrs(model: ModelIdentity, videos_root: str | os.PathLike, fps: float) -> dict:
    """The file attributes of an index of ``model`` over ``videos_root``."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "model_sha256": model.model_sha256,
            "model_path": model.model_path, "model_kind": model.model_kind, "reduction": model.reduction,
            "num_frames": model.num_frames, "context_length": model.context_length, "embed_dim": model.embed_dim,
            "videos_root": os.path.abspath(videos_root), "fps": float(fps), "size": model.size,
            "weights_sha256": model.weights_sha256}


def check_same_model(index_path: str | os.PathLike, attrs: dict, model: ModelIdentity) -> None:
    """:class:`SearchError` unless ``model`` is the model the index at ``index_path`` (``attrs``) was made with.

    Same weights file (sha256; a released zip and its extracted folder hold the same ``ckpt.best.pth.tar``,
    recorded as ``weights_sha256``) and same frames / words / token reduction: an embedding of another
    model, or of the same weights with other settings, lives in another space.
    """
    theirs = {k: attrs.get(k) for k in model.settings()}
    if model.same_weights(attrs.get("model_sha256"), attrs.get("weights_sha256")) and theirs == model.settings():
        return
    diff = [f"{k} {theirs[k]} vs {v}" for k, v in model.settings().items() if theirs[k] != v]
    sha = str(attrs.get("model_sha256", ""))[:12]
    raise SearchError(
        f"{index_path} was made with model {attrs.get('model_path')} (sha256 {sha}), not with {model.short}"
        + (f" ({'; '.join(diff)})" if diff else "")
        + f": use a new --index path for this model, or --checkpoint {attrs.get('model_path')} (the index's model)")


@dataclass
class Plan:
    """What an update does with each video (paths): the pure part of an incremental run."""

    added: list[VideoFile] = field(default_factory=list)  # not in the index: encode
    changed: list[VideoFile] = field(default_factory=list)  # size or mtime differ: encode again
    kept: list[Entry] = field(default_factory=list)  # unchanged: row kept as it is
    kept_failed: list[Failure] = field(default_factory=list)  # unchanged and unreadable: not retried
    deleted: list[str] = field(default_factory=list)  # in the index, gone from the folder

    @property
    def to_encode(self) -> list[VideoFile]:
        """The videos to decode and encode, sorted by path."""
        return sorted(self.added + self.changed, key=lambda v: v.path)


def plan_update(old: Index | None, found: list[VideoFile]) -> Plan:
    """Compare the index ``old`` (None: a new one) with the videos ``found`` now.

    A video counts as unchanged when its path, size and mtime_ns all match; a failure is matched the
    same way (an unreadable file is retried only once it changed). Deleted: entries and failures whose
    path is gone.
    """
    entries = {e.path: e for e in old.entries} if old else {}
    failures = {f.path: f for f in old.failed} if old else {}
    plan = Plan()
    seen = set()
    for video in found:
        seen.add(video.path)
        entry, failure = entries.get(video.path), failures.get(video.path)
        if entry is not None and (entry.size, entry.mtime_ns) == (video.size, video.mtime_ns):
            plan.kept.append(entry)
        elif failure is not None and (failure.size, failure.mtime_ns) == (video.size, video.mtime_ns):
            plan.kept_failed.append(failure)
        elif entry is not None or failure is not None:
            plan.changed.append(video)
        else:
            plan.added.append(video)
    plan.deleted = sorted((set(entries) | set(failures)) - seen)
    return plan


def write_index(path: str | os.PathLike, attrs: dict, entries: list[Entry], failed: list[Failure]) -> None:
    """Write the whole index to ``path`` atomically (temporary file in the same folder, then rename);
    entries and failures are sorted by path here."""
    entries = sorted(entries, key=lambda e: e.path)
    failed = sorted(failed, key=lambda f: f.path)
    e_dim = int(attrs["embed_dim"])
    string, blob = h5py.string_dtype(), h5py.vlen_dtype(np.uint8)
    with atomic.path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(attrs)
            v = f.create_group("videos")
            v.create_dataset("path", data=np.array([e.path for e in entries], dtype=object), dtype=string)
            v.create_dataset("size", data=np.array([e.size for e in entries], dtype=np.int64))
            v.create_dataset("mtime_ns", data=np.array([e.mtime_ns for e in entries], dtype=np.int64))
            v.create_dataset("duration", data=np.array([e.duration for e in entries], dtype=np.float64))
            v.create_dataset("frames_used", data=np.array([e.frames_used for e in entries], dtype=np.int32))
            emb = np.stack([e.embedding for e in entries]).astype(np.float32) if entries else \
                np.zeros((0, e_dim), np.float32)
            v.create_dataset("embedding", data=emb)
            thumbs = v.create_dataset("thumbnails", shape=(len(entries),), dtype=blob)
            for i, e in enumerate(entries):
                thumbs[i] = np.frombuffer(e.thumbnail, dtype=np.uint8)
            b = f.create_group("failed")
            b.create_dataset("path", data=np.array([x.path for x in failed], dtype=object), dtype=string)
            b.create_dataset("reason", data=np.array([x.reason for x in failed], dtype=object), dtype=string)
            b.create_dataset("size", data=np.array([x.size for x in failed], dtype=np.int64))
            b.create_dataset("mtime_ns", data=np.array([x.mtime_ns for x in failed], dtype=np.int64))
