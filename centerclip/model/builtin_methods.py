"""The paper's video encoders as token-reduction methods (Table 5): CLIP4Clip meanP, CenterCLIP
(k-medoids++ or spectral clustering), pooling, sparse sampling, token shift and temporal shift; and
ToMe (Bolya et al., ICLR 2023), beyond the paper. Each is registered through the same
:func:`~centerclip.model.methods.register_method` a plug-in uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from centerclip.model.clustering import kmedoids, spectral
from centerclip.model.methods import (ReductionMethod, SegmentResult, SegmentStage, TokenState, register_method,
                                      traced_sources)
from centerclip.model.tome import tome_block

ALGORITHMS = ("kmedoids", "spectral")
_ALGORITHM_NAMES = {"kmedoids": "k-medoids++", "spectral": "spectral"}


@dataclass(frozen=True)
class ClusterStage:
    """One reduction stage (B_block − segments, clusters)."""

    block: int = field(metadata={"schema": {"minimum": 0, "description": "runs after this many blocks (B_a)"}})
    segments: int = field(metadata={"schema": {"minimum": 1}})
    clusters: int = field(metadata={"schema": {"minimum": 1}})
    algorithm: str = field(default="kmedoids", metadata={"schema": {"enum": list(ALGORITHMS)}})
    l2_normalize: bool = False  # Table 8: cluster L2-normalised tokens
    # spectral only: neighbours kept per row, None = dense graph
    knn: int | None = field(default=None, metadata={"schema": {"minimum": 1}})
    # k-medoids only: the Minkowski p of its distances. 2 (Euclidean) is the paper's; the original
    # code's --minkowski_norm_p, which two of the authors' released MSR-VTT checkpoints set to 1.
    distance_p: float = field(default=2.0, metadata={"schema": {"exclusiveMinimum": 0, "description":
                              "k-medoids only; Minkowski p of the distances (2 = Euclidean, the paper's)"}})

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown clustering algorithm {self.algorithm!r}; choose from {ALGORITHMS}")
        if self.distance_p != 2.0 and self.algorithm != "kmedoids":
            raise ValueError(f"invalid stage {self}: distance_p applies to k-medoids only")
        if not self.distance_p > 0:
            raise ValueError(f"invalid stage {self}: distance_p must be > 0")
        if self.block < 0 or self.segments < 1 or self.clusters < 1:
            raise ValueError(f"invalid stage {self}: block >= 0, segments >= 1, clusters >= 1")

    def describe(self) -> str:
        extra = [f"kNN {self.knn}"] if self.knn else []
        extra += [f"L{self.distance_p:g} distance"] if self.distance_p != 2.0 else []
        extra += ["L2-normalised"] if self.l2_normalize else []
        return f"B{self.block} − {self.segments}, {self.clusters}" + "".join(f"; {e}" for e in extra)


@register_method("meanP")
@dataclass(frozen=True)
class MeanP(ReductionMethod):
    """CLIP4Clip's meanP: every frame through every block, frame features averaged (no reduction)."""

    def describe(self) -> str:
        return "meanP"


@dataclass(frozen=True)
class _StagedMethod(ReductionMethod):
    """A method made of (B_a − S, K) stages between blocks (CenterCLIP, pooling, sparse sampling)."""

    stages: tuple[ClusterStage, ...] = ()

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError(f"method {self.name!r} needs at least one stage (block, segments, clusters)")
        object.__setattr__(self, "stages", tuple(sorted(self.stages, key=lambda s: s.block)))

    def segment_stages(self) -> tuple[ClusterStage, ...]:
        return self.stages

    def _label(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"{self._label()} ({' then '.join(s.describe() for s in self.stages)})"


@register_method("centerclip")
@dataclass(frozen=True)
class CenterCLIP(_StagedMethod):
    """CenterCLIP (Section 3): per segment, the K medoids of its patch tokens are kept (k-medoids++ or
    spectral clustering on a detached fp32 copy; selection is not differentiable)."""

    def reduce_segment(self, stage: ClusterStage, tokens: Tensor, state: TokenState) -> SegmentResult:
        k = min(stage.clusters, tokens.shape[1])
        with torch.no_grad(), torch.autocast(tokens.device.type, enabled=False):
            x = tokens.detach().float()
            if stage.algorithm == "kmedoids":
                keep = kmedoids(x, k, l2_normalize=stage.l2_normalize, p=stage.distance_p).medoids
            else:
                keep = spectral(x, k, knn=stage.knn).medoids
        return SegmentResult(keep=keep)

    def _label(self) -> str:
        return _ALGORITHM_NAMES[self.stages[0].algorithm]


@register_method("pooling")
@dataclass(frozen=True)
class Pooling(_StagedMethod):
    """Table 5's pooling: a segment's patch tokens averaged over its frames, position by position
    (P tokens per segment; K is not used). Means over frames stand for no single patch: no sources."""

    def reduce_segment(self, stage: ClusterStage, tokens: Tensor, state: TokenState) -> SegmentResult:
        r, n, w = tokens.shape
        per = n // (state.x.shape[1] - 1)  # frames per segment: each brought its L − 1 patch tokens
        return SegmentResult(tokens=tokens.view(r, per, n // per, w).mean(dim=1))


def sparse_indices(total: int, k: int, training: bool) -> Tensor:
    """Sparse sampling's kept positions among one segment's ``total`` patch tokens (frame-major):
    ``k`` ascending indices, int64 on the CPU (the original's rule).

    Evaluation: the centre of each of ``k`` equal intervals, ``int(tick / 2 + tick * i)`` with
    ``tick = total / k`` (Python float). Training: one offset drawn in each interval of
    ``total // k`` tokens, ``i * (total // k) + randint(total // k)``, from the global CPU
    generator (seeded per micro-batch by the training loop); with ``total < k`` a sorted random
    choice without replacement (of all ``total`` tokens: the encoder clamps ``k`` to ``total``,
    so it never gets there).
    """
    if total < 1 or k < 1:
        raise ValueError(f"sparse sampling needs total >= 1 and k >= 1, got total={total}, k={k}")
    if training:
        step = total // k
        if step == 0:
            return torch.randperm(total)[:k].sort().values
        return torch.arange(k) * step + torch.randint(step, (k,))
    tick = total / k
    return torch.tensor([int(tick / 2 + tick * i) for i in range(k)], dtype=torch.long)


@register_method("sparse")
@dataclass(frozen=True)
class Sparse(_StagedMethod):
    """Table 5's sparse sampling: K evenly spread tokens per segment (random offsets in training)."""

    def reduce_segment(self, stage: ClusterStage, tokens: Tensor, state: TokenState) -> SegmentResult:
        r, n, _ = tokens.shape
        k, segments = min(stage.clusters, n), stage.segments
        # one draw per segment position, shared by every video of the batch (as the original)
        per_segment = torch.stack([sparse_indices(n, k, state.training) for _ in range(segments)])  # [S, K]
        return SegmentResult(keep=per_segment.to(tokens.device).repeat(r // segments, 1))


def temporal_shift(x: Tensor, frames: int, tokens: slice, fold_div: int = 8) -> Tensor:
    """TSM's shift along time of the ``tokens`` of x [B·T, L, W] (T = ``frames``), as the original:
    with ``fold = W // fold_div``, channels ``[0, fold)`` of frame t take frame t+1's values (zeros
    for the last frame) and channels ``[fold, 2·fold)`` frame t−1's (zeros for the first); the
    other channels and tokens are unchanged. Returns a new tensor."""
    bt, length, w = x.shape
    fold = w // fold_div
    v = x.view(bt // frames, frames, length, w)
    out = v.clone()
    src = v[:, :, tokens]
    part = torch.zeros_like(src[..., :2 * fold])
    part[:, :-1, :, :fold] = src[:, 1:, :, :fold]
    part[:, 1:, :, fold:2 * fold] = src[:, :-1, :, fold:2 * fold]
    out[:, :, tokens, :2 * fold] = part
    return out.view(bt, length, w)


@register_method("temporal_shift")
@dataclass(frozen=True)
class TemporalShift(ReductionMethod):
    """TSM (Table 5's temporal shift [54]) in every block, patch tokens only, once before attention:
    ``x <- shift(x); x <- x + attn(ln_1(x)); x <- x + mlp(ln_2(x))``."""

    def run_block(self, index: int, block: nn.Module, state: TokenState) -> TokenState:
        state.x = block(temporal_shift(state.x, state.frames, slice(1, None)))
        return state

    def describe(self) -> str:
        return "temporal shift"


@register_method("token_shift")
@dataclass(frozen=True)
class TokenShift(ReductionMethod):
    """Token shift (Table 5's [68]) in every block, CLS token only, before attention and again before
    the MLP: ``x <- shift(x); x <- x + attn(ln_1(x)); x <- shift(x); x <- x + mlp(ln_2(x))``."""

    def run_block(self, index: int, block: nn.Module, state: TokenState) -> TokenState:
        cls = slice(0, 1)
        x = temporal_shift(state.x, state.frames, cls)
        x = x + block.attn(block.ln_1(x))
        x = temporal_shift(x, state.frames, cls)
        state.x = x + block.mlp(block.ln_2(x))
        return state

    def describe(self) -> str:
        return "token shift"


@register_method("token_merging")
@dataclass(frozen=True)
class TokenMerging(ReductionMethod):
    """ToMe (Bolya et al., ICLR 2023; github.com/facebookresearch/ToMe) on CenterCLIP's segments: after
    block ``block`` each segment's frames' patch tokens become one sequence (as a CenterCLIP stage takes
    them, CLS = mean of the frames'), and every later block merges ``r`` of its tokens by bipartite soft
    matching on the attention keys, size-weighted, with proportional attention (log size added to the
    attention logits). Beyond the paper: its ``r`` can be chosen to match CenterCLIP's FLOPs."""

    block: int = field(metadata={"schema": {"minimum": 0, "description": "segments form after this many blocks"}})
    segments: int = field(metadata={"schema": {"minimum": 1}})
    r: int = field(metadata={"schema": {"minimum": 0, "description": "tokens merged in each later block"}})

    def segment_stages(self) -> tuple[SegmentStage, ...]:
        return (SegmentStage(self.block, self.segments),)

    def reduce_segment(self, stage: SegmentStage, tokens: Tensor, state: TokenState) -> SegmentResult:
        r, n, _ = tokens.shape
        return SegmentResult(keep=torch.arange(n, device=tokens.device).expand(r, n))  # all kept: merging is per block

    def run_block(self, index: int, block: nn.Module, state: TokenState) -> TokenState:
        if index < self.block:
            return super().run_block(index, block, state)
        member = state.membership()
        source = None if member is None else torch.cat([member.new_zeros(member.shape[0], 1, member.shape[2]),
                                                        member], dim=1)  # a CLS row: tome_block merges whole rows
        size = None if state.size is None else state.size.unsqueeze(-1)
        state.x, size, source = tome_block(block, state.x, size, self.r, source)
        state.size = size.squeeze(-1)
        if source is not None:
            state.source = source[:, 1:]  # the CLS token stays first
            state.trace.append((index, traced_sources(state)))
        return state

    def describe(self) -> str:
        return f"ToMe (B{self.block} − {self.segments}, r = {self.r})"
