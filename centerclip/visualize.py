"""Figure 5's computation: which patches survive CenterCLIP's token clustering.

:func:`kept_patches` runs a CLIP vision transformer's first ``block`` blocks on a video's
frames exactly as :func:`centerclip.video_encoder.encode_segments` does, cuts the frames into
``segments`` consecutive segments and clusters each segment's patch tokens with k-medoids++;
the medoids are the kept (centre) tokens. :func:`load_checkpoint_video` reads what Figure 5
needs from a training checkpoint of this package and the frame cache.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from centerclip.clustering import kmedoids


@torch.no_grad()
def kept_patches(visual: torch.nn.Module, frames: Tensor, block: int, segments: int, clusters: int,
                 l2_normalize: bool = False) -> list[Tensor]:
    """Kept token indices per segment.

    ``frames``: float [T, 3, H, W], CLIP-normalised. The T frames are cut into ``segments``
    segments of T / segments frames; each segment's patch tokens (frame-major, raster order, no
    CLS) after ``block`` blocks are clustered into min(clusters, tokens) clusters. Returns one
    ascending LongTensor of indices into the segment's patch list per segment: index i is patch
    ``i % grid²`` (raster order) of the segment's frame ``i // grid²``.
    """
    t = frames.shape[0]
    blocks = visual.transformer.resblocks
    if not 0 <= block <= len(blocks):
        raise ValueError(f"block must be in 0..{len(blocks)} for this model, got {block}")
    if segments < 1 or t % segments:
        raise ValueError(f"{t} frames cannot be cut into {segments} equal segments")
    x = visual.embed(frames)  # [T, 1+P, W]
    for b in blocks[:block]:
        x = b(x)
    patches = x[:, 1:]
    p, w = patches.shape[1:]
    per_segment = patches.reshape(segments, (t // segments) * p, w).float()
    k = min(clusters, per_segment.shape[1])
    medoids = kmedoids(per_segment, k, l2_normalize=l2_normalize).medoids.cpu()
    return list(medoids)


def patch_mask(kept: Tensor | np.ndarray, frames_per_segment: int, grid: int) -> np.ndarray:
    """Kept indices of one segment -> bool [frames_per_segment, grid, grid] (True = kept patch)."""
    mask = np.zeros((frames_per_segment, grid * grid), dtype=bool)
    idx = np.asarray(kept.cpu() if isinstance(kept, Tensor) else kept, dtype=np.int64)
    if idx.size and idx.max() >= mask.size:
        raise ValueError(f"kept index {idx.max()} out of range for {frames_per_segment} frames of {grid}x{grid}")
    mask[idx // (grid * grid), idx % (grid * grid)] = True
    return mask.reshape(frames_per_segment, grid, grid)


def load_checkpoint_video(checkpoint_path: str | os.PathLike, cache_path: str | os.PathLike, video_id: str,
                          num_frames: int = 12) -> tuple[torch.nn.Module, np.ndarray, Tensor]:
    """(vision transformer, uint8 frames [T, S, S, 3] at the model's resolution, normalised float
    frames [T, 3, S, S]) for a training checkpoint of this package and one cached video, with the
    evaluation frame sampling (segment centres)."""
    from centerclip.data.datasets import normalise_frames, sample_frame_indices
    from centerclip.data.frame_cache import FrameCache
    from centerclip.model import RetrievalModel, build_clip
    from centerclip.run_config import RunConfig

    path = Path(checkpoint_path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        cfg = RunConfig.from_dict(ckpt["run_config"])
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a training checkpoint of this package ({exc})") from None
    model = RetrievalModel(build_clip(cfg.model), cfg.reduction)
    model.load_state_dict(ckpt["model"])
    model.eval()
    visual = model.clip.visual

    cache = FrameCache(cache_path)
    try:
        if video_id not in cache:
            raise KeyError(f"{cache_path}: video {video_id!r} is not in the frame cache "
                           f"(first ids: {cache.video_ids[:5]})")
        idx, _ = sample_frame_indices(cache.num_frames(video_id), num_frames, train=False)
        frames = cache.read(video_id, idx)
    finally:
        cache.close()
    size = visual.input_resolution
    if frames.shape[1] != size or frames.shape[2] != size:
        t = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
        frames = t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return visual, frames, normalise_frames(frames)
