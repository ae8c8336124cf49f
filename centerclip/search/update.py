"""``centerclip-search index``: build or update an index of every video under a folder.

Videos are decoded by ``threads`` worker threads (each runs one ffmpeg, then decord) while the main
thread encodes finished ones in batches of ``batch_size``; the index file is written once at the end.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from centerclip.data.compress import BadVideo
from centerclip.data.ffmpeg_bin import FFmpegNotFound
from centerclip.model.retrieval import RetrievalModel
from centerclip.search.checkpoints import ModelIdentity
from centerclip.search.errors import SearchError
from centerclip.search.index import Entry, Failure, check_same_model, index_attrs, plan_update, read_index, \
    write_index
from centerclip.search.videos import FPS, PreparedVideo, VideoFile, find_videos, prepare_in_order, prepare_video


@dataclass(frozen=True)
class UpdateSummary:
    """Counts of one run. ``indexed`` = added + changed + kept (videos in the index); ``failed``: the
    index's unreadable videos, new and kept; ``deleted``: entries and failures whose file is gone."""

    indexed: int
    added: int
    changed: int
    deleted: int
    kept: int
    failed: int

    def line(self, out: str | os.PathLike) -> str:
        return (f"indexed {self.indexed} videos ({self.added} added, {self.changed} changed, {self.deleted} deleted, "
                f"{self.kept} kept, {self.failed} failed) -> {out}")


@torch.inference_mode()
def encode_batch(model: RetrievalModel, batch: list[PreparedVideo], device: torch.device) -> np.ndarray:
    """Video embeddings float32 [B, E] (L2-normalised) of prepared videos, each video [T, 3, S, S]."""
    video = torch.stack([p.video for p in batch]).to(device)  # [B, T, 3, S, S]
    mask = torch.stack([p.mask for p in batch]).to(device)  # [B, T]
    return model.encode_video(video, mask).float().cpu().numpy()


def existing_index(index_path: Path, model: ModelIdentity):
    """The index already at ``index_path`` (None when there is none), refused when another model made it."""
    if not index_path.exists():
        return None
    old = read_index(index_path)
    check_same_model(index_path, old.attrs, model)
    return old


def update_index(model: RetrievalModel, identity: ModelIdentity, videos_root: str | os.PathLike,
                 index_path: str | os.PathLike, device: torch.device, threads: int = 1, batch_size: int = 16,
                 progress: bool = False, warn: Callable[[str], None] | None = None) -> UpdateSummary:
    """Bring the index at ``index_path`` up to date with the videos under ``videos_root``.

    New and changed videos are encoded with ``model`` (eval mode, its own token reduction and frame
    count), deleted ones dropped, unchanged ones kept as they are. Each video that cannot be read is
    recorded with its reason and reported through ``warn`` (one line, ``skipped <path>: <reason>``).
    Raises :class:`SearchError` for a missing folder, an index of another model, or no ffmpeg.
    """
    warn = warn or _stderr_line
    root, index_path = Path(os.path.abspath(videos_root)), Path(os.path.abspath(index_path))
    if not root.is_dir():
        raise SearchError(f"--videos {videos_root}: " + ("not a folder" if root.exists() else "no such folder"))
    old = existing_index(index_path, identity)
    found = find_videos(root)
    if old is not None and old.attrs.get("videos_root") != str(root):
        # A moved folder keeps its files' sizes and mtimes: rows are keyed by the path relative to the
        # root, so its unchanged videos are kept; the index now points at the new root.
        warn(f"note: {index_path} indexed {old.attrs.get('videos_root')}, now {root}; videos with the same "
             "relative path, size and mtime are kept")
    plan = plan_update(old, found)
    entries, failed = list(plan.kept), list(plan.kept_failed)
    for f in plan.kept_failed:  # not retried while unchanged, but still reported: it is still not searchable
        warn(f"skipped {f.path}: {f.reason}")
    unreadable = [v for v in plan.to_encode if v.error]
    todo = [v for v in plan.to_encode if not v.error]
    for v in unreadable:
        failed.append(Failure(v.path, v.error, v.size, v.mtime_ns))
        warn(f"skipped {v.path}: {v.error}")
    encoded: set[str] = set()
    index_path.parent.mkdir(parents=True, exist_ok=True)
    model = model.to(device).eval()
    with tempfile.TemporaryDirectory(prefix=".centerclip-search-", dir=index_path.parent) as work:
        def prepare(v: VideoFile) -> PreparedVideo:
            return prepare_video(root / v.path, identity.size, identity.num_frames, work)

        batch: list[tuple[VideoFile, PreparedVideo]] = []

        def flush() -> None:
            embeddings = encode_batch(model, [p for _, p in batch], device)
            for (v, p), e in zip(batch, embeddings):
                entries.append(Entry(v.path, v.size, v.mtime_ns, p.duration, p.frames_used, e, p.thumbnail))
                encoded.add(v.path)
            batch.clear()

        bar = _progress(len(todo), progress)
        try:
            for v, fut in prepare_in_order(todo, prepare, threads, ahead=max(threads * 2, batch_size)):
                try:
                    batch.append((v, fut.result()))
                except FFmpegNotFound as exc:
                    raise SearchError(f"no ffmpeg: {exc}") from None
                except Exception as exc:  # one video never stops the run: it is listed with its reason
                    reason = exc.reason if isinstance(exc, BadVideo) else \
                        f"unexpected error: {type(exc).__name__}: {exc}"
                    reason = " ".join(reason.split())  # one line on stderr, whatever ffmpeg printed
                    failed.append(Failure(v.path, reason, v.size, v.mtime_ns))
                    warn(f"skipped {v.path}: {reason}")
                if len(batch) >= batch_size:
                    flush()
                bar.update(1)
            if batch:
                flush()
        finally:
            bar.close()
    write_index(index_path, index_attrs(identity, root, FPS), entries, failed)
    added = sum(v.path in encoded for v in plan.added)
    changed = sum(v.path in encoded for v in plan.changed)
    return UpdateSummary(indexed=len(entries), added=added, changed=changed, deleted=len(plan.deleted),
                         kept=len(plan.kept), failed=len(failed))


def _stderr_line(line: str) -> None:
    """One line on stderr; above the progress bar, when one is drawn, instead of through it."""
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="index", unit="video", disable=not enabled, file=sys.stderr)
