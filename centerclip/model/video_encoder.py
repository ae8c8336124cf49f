"""Video encoder on an unmodified CLIP vision transformer: CLIP4Clip meanP, CenterCLIP, the
token-reduction baselines of Table 5 and any plug-in method, all switched by one
:class:`TokenReduction` setting.

Frames are encoded independently by the first blocks (no temporal embedding anywhere). A
between-block *stage* (B_a − S, ...) runs at the input of block a+1: the sequences of a video are
cut into S consecutive segments; per segment the method reduces the patch tokens of its frames
(frame-major, raster order), e.g. to K medoids, and the segment's CLS token is the mean of its
frames' CLS tokens. The remaining blocks run on one sequence per segment, and the video feature is
the masked mean of the normalised segment features (segment-level alignment, paper eq. 5). A method
may also change how blocks run (the shifts, ToMe). Without either this is exactly CLIP4Clip meanP.
Methods are defined in :mod:`centerclip.model.methods`; the built-in ones in
:mod:`centerclip.model.builtin_methods`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from centerclip.model.builtin_methods import ALGORITHMS, ClusterStage, sparse_indices, temporal_shift
from centerclip.model.methods import (ReductionMethod, SegmentResult, TokenState, build_method, method_class,
                                      traced_sources)

__all__ = ["ALGORITHMS", "ClusterStage", "TokenReduction", "encode_segments", "pool_segments", "reduce_tokens",
           "sparse_indices", "temporal_shift"]


class TokenReduction:
    """Which video encoder: a registered method (``meanP``, ``centerclip``, ``pooling``, ``sparse``,
    ``token_shift``, ``temporal_shift``, ``token_merging`` or a plug-in's) with its parameters, and which
    segments count in the segment-level mean.

    ``TokenReduction("centerclip", (ClusterStage(6, 4, 49),))``; a method's other parameters by name,
    e.g. ``TokenReduction("token_merging", block=6, segments=4, r=40)``. ``impl`` is the method object.
    """

    def __init__(self, method: str = "meanP", stages: tuple = (), segment_valid: str = "any", **params: Any):
        # Which segments count in the segment-level mean. "any": a segment holding at least one real
        # (not padded) frame. "last": the original code's rule, valid only when its last frame is real;
        # it drops segments that hold real frames and, with S = 1 on a video shorter than T frames,
        # leaves no valid segment at all (a 0/0 feature). Padded frames repeat the last real one, so
        # keeping such a segment adds no made-up content.
        if segment_valid not in ("any", "last"):
            raise ValueError(f"segment_valid must be 'any' or 'last', got {segment_valid!r}")
        cls = method_class(method)
        if stages:
            if "stages" not in {f.name for f in dataclasses.fields(cls)}:
                raise ValueError(f"method {method!r} takes no stages")
            params["stages"] = tuple(stages)
        self.method = method
        self.segment_valid = segment_valid
        self.impl: ReductionMethod = build_method(method, params)

    @property
    def stages(self) -> tuple:
        """The method's ``stages`` parameter (CenterCLIP, pooling, sparse sampling), else ()."""
        return tuple(getattr(self.impl, "stages", ()))

    @property
    def params(self) -> dict[str, Any]:
        """The method's parameters as plain data (defaults left out), as run.yaml holds them."""
        return self.impl.to_config()

    def describe(self) -> str:
        """The setting as tables print it, e.g. ``k-medoids++ (B6 − 4, 49)``."""
        return self.impl.describe()

    def to_dict(self) -> dict[str, Any]:
        """The ``reduction`` section of a run config; :meth:`from_dict` reads it back."""
        out = {"method": self.method, **self.params}
        if self.segment_valid != "any":
            out["segment_valid"] = self.segment_valid
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "TokenReduction":
        """From a run config's ``reduction`` section: ``method``, optional ``segment_valid`` and the
        method's parameters (``stages`` for the staged methods)."""
        d = dict(d)
        method, segment_valid = d.pop("method", "meanP"), d.pop("segment_valid", "any")
        return cls(method, tuple(d.pop("stages", ())), segment_valid, **d)

    def _key(self) -> tuple:
        return (self.method, self.segment_valid, self.impl)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenReduction) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"TokenReduction({self.impl!r}, segment_valid={self.segment_valid!r})"


def _apply_stage(method: ReductionMethod, stage: Any, state: TokenState, segment_valid: str) -> TokenState:
    """One between-block stage: cut the G sequences of each video into ``stage.segments`` segments, CLS
    token = mean of its frames' CLS tokens, the method reduces the patch tokens; trace the sources."""
    b, g = state.mask.shape
    s = stage.segments
    if g % s:
        raise ValueError(f"stage {stage}: {g} frames/segments per video cannot be cut into {s} segments")
    per = g // s
    _, length, w = state.x.shape
    x = state.x.view(b, s, per, length, w)
    cls = x[:, :, :, 0].mean(dim=2).reshape(b * s, 1, w)
    patches = x[:, :, :, 1:].reshape(b * s, per * (length - 1), w)
    size = None if state.size is None else state.size.view(b, s, per, length)[..., 1:].reshape(b * s, -1)
    source = None if state.source is None else state.source.reshape(b * s, per * (length - 1), -1).squeeze(-1)
    result: SegmentResult = method.reduce_segment(stage, patches, state)
    if result.keep is not None:
        kept = patches.gather(1, result.keep.unsqueeze(-1).expand(-1, -1, w))
        keep = result.keep.to(patches.device)
        size = None if size is None else size.gather(1, keep)
        if source is not None:
            index = keep.to(source.device)
            source = source.gather(1, index) if source.dim() == 2 else \
                source.gather(1, index.unsqueeze(-1).expand(-1, -1, source.shape[-1]))
    else:
        kept = result.tokens
        k = kept.shape[1]
        if result.groups is None:
            size = source = None  # new tokens of unknown make-up
        else:
            size = _group_sum(result.groups, torch.ones_like(result.groups, dtype=kept.dtype) if size is None
                              else size, k)
            if source is not None:
                member = state.membership().reshape(b * s, per * (length - 1), -1)
                source = _group_sum(result.groups, member.float(), k) > 0
    cls_size = None if size is None else torch.ones(b * s, 1, dtype=size.dtype, device=size.device)
    parts = state.mask.view(b, s, per)
    state.x = torch.cat([cls, kept], dim=1)
    state.mask = parts.any(dim=-1) if segment_valid == "any" else parts[..., -1]
    state.size = None if size is None else torch.cat([cls_size, size], dim=1)
    state.source = source
    return state


def _group_sum(groups: Tensor, values: Tensor, k: int) -> Tensor:
    """Sum ``values`` [R, N] or [R, N, C] into ``k`` outputs by ``groups`` long [R, N] (−1 = dropped)."""
    valid = groups >= 0
    index = groups.clamp(min=0)
    v = values * (valid if values.dim() == 2 else valid.unsqueeze(-1))
    out = v.new_zeros(v.shape[0], k, *v.shape[2:])
    if v.dim() == 3:
        index = index.unsqueeze(-1).expand_as(v)
    return out.scatter_add_(1, index, v)


def reduce_tokens(x: Tensor, seg_mask: Tensor, stage: ClusterStage, method: str, training: bool,
                  segment_valid: str = "any") -> tuple[Tensor, Tensor]:
    """Apply one stage of ``method`` (centerclip, pooling, sparse). ``x`` [B·G, 1+n, W] (G sequences per
    video), ``seg_mask`` bool [B, G].

    Returns x [B·S, 1+K, W] and the segment mask [B, S].
    """
    impl = build_method(method, {"stages": (stage,)})
    state = TokenState(x=x, mask=seg_mask.bool(), frames=seg_mask.shape[1], patches=x.shape[1] - 1,
                       training=training)
    state = _apply_stage(impl, stage, state, segment_valid)
    return state.x, state.mask


def encode_segments(visual: torch.nn.Module, video: Tensor, mask: Tensor, reduction: TokenReduction,
                    training: bool = False, trace: list | None = None) -> tuple[Tensor, Tensor]:
    """Run the vision transformer on a batch of videos.

    video float [B, T, 3, H, W], mask bool [B, T] -> segment features [B, G, E] (not normalised;
    G = T for meanP, else the last stage's S) and segment mask bool [B, G].

    ``trace``: a list to which each between-block stage appends ``(stage, kept)``, ``kept`` long
    [B, S, K] = which patches of the video its kept tokens are, as ``frame · P + patch`` (P patches per
    frame, raster order), through every earlier stage (as ToMe's ``trace_source`` records token sources
    during the normal forward); after a merge, bool [B, S, K, T·P] = the patches each token stands for;
    None for pooling and any stage after it (pooled tokens are means over frames). Methods that merge
    inside blocks append ``(block index, sources)`` likewise. The forward is unchanged.
    """
    b, t = video.shape[:2]
    blocks = visual.transformer.resblocks
    method = reduction.impl
    stages = sorted(method.segment_stages(), key=lambda s: s.block)
    if stages and stages[-1].block >= len(blocks):
        raise ValueError(f"stage after block {stages[-1].block} but the model has {len(blocks)} blocks")
    x = visual.embed(video.flatten(0, 1))  # [B·T, 1+P, W]
    p = x.shape[1] - 1
    state = TokenState(x=x, mask=mask.bool(), frames=t, patches=p, training=training, trace=trace)
    if trace is not None:  # every patch token's place in its video: frame · P + patch
        state.source = torch.arange(t * p, device=x.device).view(1, t, p).expand(b, t, p).reshape(b * t, p)
    for i, block in enumerate(blocks):
        while stages and stages[0].block == i:
            stage = stages.pop(0)
            state = _apply_stage(method, stage, state, reduction.segment_valid)
            if trace is not None:
                trace.append((stage, traced_sources(state)))
        state = method.run_block(i, block, state)
    feats = visual.head(state.x[:, 0])
    return feats.view(b, state.mask.shape[1], -1), state.mask


def pool_segments(feats: Tensor, seg_mask: Tensor) -> Tensor:
    """Segment-level alignment: normalise each segment feature [B, G, E], masked mean, normalise -> [B, E]."""
    feats = feats / feats.norm(dim=-1, keepdim=True)
    m = seg_mask.to(feats.dtype).unsqueeze(-1)
    pooled = (feats * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    return pooled / pooled.norm(dim=-1, keepdim=True)
