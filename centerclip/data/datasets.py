"""Torch datasets over the frame cache: TSN frame sampling, CLIP normalisation, tokenised captions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from centerclip.data.frame_cache import FrameCache
from centerclip.model.tokenizer import tokenize

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def sample_frame_indices(n: int, num_frames: int, train: bool, rng: np.random.Generator | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Choose ``num_frames`` of a video's ``n`` frames, as the original code does.

    Training: one random frame inside each of ``num_frames`` equal segments of ``n // num_frames``
    frames (n > num_frames here, so a segment holds at least one frame). Evaluation: the
    segment centres exactly as the original computes them, ``int(tick / 2.0 + tick * i)`` with
    ``tick = n / num_frames`` in double precision. Short videos (n <= num_frames): all frames,
    then the last one repeated.

    Returns (indices int64 [num_frames], mask bool [num_frames]) where mask marks real frames.
    """
    if n <= 0:
        raise ValueError("a video needs at least one frame")
    mask = np.ones(num_frames, dtype=bool)
    if n <= num_frames:
        idx = np.concatenate([np.arange(n), np.full(num_frames - n, n - 1)])
        mask[n:] = False
        return idx.astype(np.int64), mask
    if train:
        rng = rng if rng is not None else np.random.default_rng()
        seg = n // num_frames  # >= 1: n > num_frames
        idx = np.arange(num_frames) * seg + rng.integers(0, seg, size=num_frames)
        return idx.astype(np.int64), mask
    # The original's expression, evaluated in the same order in Python floats: ``tick * i`` (not
    # ``i * n / num_frames``), so that a centre that is a whole number in exact arithmetic may land
    # one frame earlier (n = 16, T = 12: ... 8, 9, 11 ...).
    tick = n / num_frames
    idx = np.array([int(tick / 2.0 + tick * i) for i in range(num_frames)], dtype=np.int64)
    return idx, mask


def normalise_frames(frames: np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float32 [T, 3, H, W] scaled to [0, 1] and CLIP-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def sample_video(n: int, read: Callable[[np.ndarray], np.ndarray], num_frames: int, train: bool,
                 rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The model input of one video of ``n`` frames, sampled and padded as every evaluation and training
    set does: :func:`sample_frame_indices`, then ``read(indices)`` -> uint8 [num_frames, S, S, 3] (the
    frames at those positions, repeats included), then :func:`normalise_frames`.

    Returns (video float32 [num_frames, 3, S, S], mask bool [num_frames]); short videos repeat their
    last frame, marked False in the mask.
    """
    idx, mask = sample_frame_indices(n, num_frames, train, rng)
    return normalise_frames(read(idx)), torch.from_numpy(mask)


class VideoTextDataset(Dataset):
    """One item per (video, caption) pair.

    Pairs whose video the cache records as missing (bad at compression or caching, with the
    reason in ``cache.missing`` and the dataset's ``bad_videos.tsv``) are left out and listed in
    ``dropped``; a video that is neither cached nor recorded as missing is an error (wrong cache
    for this manifest).

    Item: dict with ``video`` float [T, 3, S, S], ``video_mask`` bool [T], ``tokens`` long [L],
    ``video_id`` str and ``index`` int (position in ``pairs``).
    """

    def __init__(self, cache: FrameCache | str, pairs: Sequence[tuple[str, str]], num_frames: int,
                 context_length: int, train: bool, seed: int = 0):
        self.cache = cache if isinstance(cache, FrameCache) else FrameCache(cache)
        unknown = sorted({v for v, _ in pairs if v not in self.cache and v not in self.cache.missing})
        if unknown:
            raise KeyError(f"{len(unknown)} videos are neither in {self.cache.path} nor recorded there as bad "
                           f"(e.g. {unknown[:3]}): the cache was built from another manifest; rebuild it "
                           "(delete it and rerun the frame_cache rule)")
        #: (video_id, reason) of every video whose pairs were left out, once each
        self.dropped = [(v, self.cache.missing[v]) for v in dict.fromkeys(v for v, _ in pairs if v not in self.cache)]
        self.pairs = [(v, c) for v, c in pairs if v in self.cache]
        self.num_frames = num_frames
        self.context_length = context_length
        self.train = train
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Make training-time frame sampling depend on (seed, epoch, item) only: resumable runs repeat it."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        video_id, caption = self.pairs[i]
        rng = np.random.default_rng((self.seed, self.epoch, i)) if self.train else None
        video, mask = sample_video(self.cache.num_frames(video_id), lambda idx: self.cache.read(video_id, idx),
                                   self.num_frames, self.train, rng)
        return {
            "video": video,
            "video_mask": mask,
            "tokens": tokenize(caption, context_length=self.context_length)[0],
            "video_id": video_id,
            "index": i,
        }
