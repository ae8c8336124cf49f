"""Figure 5's computation: which patches survive a run's token reduction.

:func:`kept_patches` runs the video encoder's normal forward on a video's frames with a trace of
token sources (:func:`centerclip.model.video_encoder.encode_segments`), so what it shows is what the model
keeps: k-medoids++ or spectral clustering, L2-normalised or not, at the run's block and K.
:func:`load_checkpoint_video` reads the model of a training checkpoint and one cached video.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from centerclip.model.video_encoder import ClusterStage, TokenReduction, encode_segments

if TYPE_CHECKING:
    from centerclip.model.retrieval import RetrievalModel
    from centerclip.training.settings import RunConfig


def with_segments(reduction: TokenReduction, segments: int) -> TokenReduction:
    """``reduction``'s first between-block stage alone, cutting the frames into ``segments`` segments: the
    ``stages[0]`` of a staged method (CenterCLIP, sparse sampling), or a method's own ``segments``
    parameter (a plug-in with one stage). ValueError for a method without a between-block stage."""
    impl = reduction.impl
    names = {f.name for f in dataclasses.fields(impl)}
    if reduction.stages:
        impl = dataclasses.replace(impl, stages=(dataclasses.replace(reduction.stages[0], segments=segments),))
    elif "segments" in names and impl.segment_stages():
        impl = dataclasses.replace(impl, segments=segments)
    else:
        raise ValueError(f"method {reduction.method!r} keeps no subset of tokens: it has no between-block stage")
    return TokenReduction(reduction.method, segment_valid=reduction.segment_valid, **{
        f.name: getattr(impl, f.name) for f in dataclasses.fields(impl)})


@torch.no_grad()
def kept_patches(visual: torch.nn.Module, frames: Tensor, stage: ClusterStage | TokenReduction,
                 method: str = "centerclip") -> list[Tensor]:
    """Kept token indices per segment when ``stage`` (with ``method``: centerclip or sparse), or the first
    stage of a :class:`TokenReduction` that keeps tokens (any method whose stage returns kept positions),
    reduces the tokens of ``frames`` float [T, 3, H, W] (CLIP-normalised), run through the encoder as in
    evaluation. Returns one ascending LongTensor per segment of indices into the segment's patch list:
    index i is patch ``i % grid²`` (raster order) of the segment's frame ``i // grid²``.
    """
    t = frames.shape[0]
    reduction = stage if isinstance(stage, TokenReduction) else TokenReduction(method, (stage,))
    first = sorted(reduction.impl.segment_stages(), key=lambda s: s.block)[0]
    if first.segments < 1 or t % first.segments:
        raise ValueError(f"{t} frames cannot be cut into {first.segments} equal segments")
    trace: list = []
    encode_segments(visual, frames[None], torch.ones(1, t, dtype=torch.bool, device=frames.device),
                    reduction, training=False, trace=trace)
    kept = trace[0][1]
    if kept is None or kept.dtype == torch.bool:
        raise ValueError(f"method {reduction.method!r} keeps no subset of tokens at its first stage "
                         "(its tokens are means or merges): Figure 5 shows kept tokens")
    per_segment = (t // first.segments) * visual.grid ** 2
    offsets = torch.arange(first.segments, device=kept.device)[:, None] * per_segment
    return list((kept[0] - offsets).sort(dim=1).values.cpu())


def patch_mask(kept: Tensor | np.ndarray, frames_per_segment: int, grid: int) -> np.ndarray:
    """Kept indices of one segment -> bool [frames_per_segment, grid, grid] (True = kept patch)."""
    mask = np.zeros((frames_per_segment, grid * grid), dtype=bool)
    idx = np.asarray(kept.cpu() if isinstance(kept, Tensor) else kept, dtype=np.int64)
    if idx.size and idx.max() >= mask.size:
        raise ValueError(f"kept index {idx.max()} out of range for {frames_per_segment} frames of {grid}x{grid}")
    mask[idx // (grid * grid), idx % (grid * grid)] = True
    return mask.reshape(frames_per_segment, grid, grid)


def load_checkpoint_video(checkpoint_path: str | os.PathLike, cache_path: str | os.PathLike, video_id: str,
                          num_frames: int | None = None) -> tuple[RetrievalModel, RunConfig, np.ndarray, Tensor]:
    """(model, run config, uint8 frames [T, S, S, 3] at the model's resolution, normalised float frames
    [T, 3, S, S]) for a training checkpoint of this package and one cached video, with the evaluation
    frame sampling (segment centres) and the run's evaluation frame count unless ``num_frames`` is given."""
    from centerclip.data.datasets import normalise_frames, sample_frame_indices
    from centerclip.data.frame_cache import FrameCache
    from centerclip.training.checkpoint import from_checkpoint

    model, cfg = from_checkpoint(checkpoint_path)
    num_frames = num_frames or cfg.eval.num_frames
    cache = FrameCache(cache_path)
    try:
        if video_id not in cache:
            raise KeyError(f"{cache_path}: video {video_id!r} is not in the frame cache "
                           f"(first ids: {cache.video_ids[:5]})")
        idx, _ = sample_frame_indices(cache.num_frames(video_id), num_frames, train=False)
        frames = cache.read(video_id, idx)
    finally:
        cache.close()
    size = model.clip.visual.input_resolution
    if frames.shape[1] != size or frames.shape[2] != size:
        t = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
        frames = t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return model, cfg, frames, normalise_frames(frames)
