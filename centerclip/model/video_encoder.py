"""Video encoder on an unmodified CLIP vision transformer: CLIP4Clip meanP, CenterCLIP and the
token-reduction baselines of Table 5, all switched by one :class:`TokenReduction` setting.

Frames are encoded independently by the first blocks (no temporal embedding anywhere). A
reduction *stage* (B_a − S, K) runs at the input of block a+1: the sequences of a video are
cut into S consecutive segments; per segment the patch tokens of its frames (frame-major,
raster order) are reduced to K tokens and the segment's CLS token is the mean of its frames'
CLS tokens. The remaining blocks run on one (1 + K)-token sequence per segment, and the
video feature is the masked mean of the normalised segment features (segment-level
alignment, paper eq. 5). Without stages this is exactly CLIP4Clip meanP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from centerclip.model.clustering import kmedoids, spectral

METHODS = ("meanP", "centerclip", "pooling", "sparse", "token_shift", "temporal_shift")
ALGORITHMS = ("kmedoids", "spectral")


@dataclass(frozen=True)
class ClusterStage:
    """One reduction stage (B_block − segments, clusters)."""

    block: int  # runs after this many blocks, i.e. at the input of block ``block + 1``
    segments: int
    clusters: int
    algorithm: str = "kmedoids"
    l2_normalize: bool = False  # Table 8: cluster L2-normalised tokens
    knn: int | None = None  # spectral only: neighbours kept per row, None = dense graph
    # k-medoids only: the Minkowski p of its distances. 2 (Euclidean) is the paper's; the original
    # code's --minkowski_norm_p, which two of the authors' released MSR-VTT checkpoints set to 1.
    distance_p: float = 2.0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown clustering algorithm {self.algorithm!r}; choose from {ALGORITHMS}")
        if self.distance_p != 2.0 and self.algorithm != "kmedoids":
            raise ValueError(f"invalid stage {self}: distance_p applies to k-medoids only")
        if not self.distance_p > 0:
            raise ValueError(f"invalid stage {self}: distance_p must be > 0")
        if self.block < 0 or self.segments < 1 or self.clusters < 1:
            raise ValueError(f"invalid stage {self}: block >= 0, segments >= 1, clusters >= 1")


@dataclass(frozen=True)
class TokenReduction:
    """Which video encoder: ``meanP`` (no stages), ``centerclip`` (clustering stages),
    ``pooling`` / ``sparse`` (one stage giving block and segments; sparse also K), or the
    shift baselines ``token_shift`` / ``temporal_shift`` (no stages, every block)."""

    method: str = "meanP"
    stages: tuple[ClusterStage, ...] = field(default_factory=tuple)
    # Which segments count in the segment-level mean. "any": a segment holding at least one real
    # (not padded) frame. "last": the original code's rule, valid only when its last frame is real;
    # it drops segments that hold real frames and, with S = 1 on a video shorter than T frames,
    # leaves no valid segment at all (a 0/0 feature). Padded frames repeat the last real one, so
    # keeping such a segment adds no made-up content.
    segment_valid: str = "any"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose from {METHODS}")
        object.__setattr__(self, "stages", tuple(sorted(self.stages, key=lambda s: s.block)))
        if self.segment_valid not in ("any", "last"):
            raise ValueError(f"segment_valid must be 'any' or 'last', got {self.segment_valid!r}")
        needs_stage = self.method in ("centerclip", "pooling", "sparse")
        if needs_stage and not self.stages:
            raise ValueError(f"method {self.method!r} needs at least one stage (block, segments, clusters)")
        if not needs_stage and self.stages:
            raise ValueError(f"method {self.method!r} takes no stages")

    @classmethod
    def from_dict(cls, d: dict) -> "TokenReduction":
        return cls(d.get("method", "meanP"), tuple(ClusterStage(**s) for s in d.get("stages", ())),
                   d.get("segment_valid", "any"))


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


def _select_tokens(tokens: Tensor, stage: ClusterStage, method: str, training: bool, segments: int
                   ) -> tuple[Tensor, Tensor]:
    """Reduce each row of ``tokens`` [R, N, W] (R = B·S, video-major) to the kept tokens [R, K, W]
    (ascending order); also returns their positions in the row, long [R, K]."""
    r, n, w = tokens.shape
    k = min(stage.clusters, n)
    if method == "centerclip":
        # selection is not differentiable: cluster a detached fp32 copy, gather from the live tensor
        with torch.no_grad(), torch.autocast(tokens.device.type, enabled=False):
            x = tokens.detach().float()
            if stage.algorithm == "kmedoids":
                keep = kmedoids(x, k, l2_normalize=stage.l2_normalize, p=stage.distance_p).medoids
            else:
                keep = spectral(x, k, knn=stage.knn).medoids
    elif method == "sparse":
        # one draw per segment position, shared by every video of the batch (as the original)
        per_segment = torch.stack([sparse_indices(n, k, training) for _ in range(segments)])  # [S, K]
        keep = per_segment.to(tokens.device).repeat(r // segments, 1)
    else:  # pragma: no cover - guarded by TokenReduction
        raise ValueError(method)
    return tokens.gather(1, keep.unsqueeze(-1).expand(-1, -1, w)), keep


def _reduce(x: Tensor, seg_mask: Tensor, stage: ClusterStage, method: str, training: bool,
            segment_valid: str) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`reduce_tokens`, plus the positions of the kept tokens among each segment's patch tokens
    long [B·S, K] (None for pooling, whose tokens are means over frames)."""
    b, g = seg_mask.shape
    s = stage.segments
    if g % s:
        raise ValueError(f"stage {stage}: {g} frames/segments per video cannot be cut into {s} segments")
    per = g // s
    _, length, w = x.shape
    x = x.view(b, s, per, length, w)
    cls = x[:, :, :, 0].mean(dim=2).reshape(b * s, 1, w)
    keep = None
    if method == "pooling":
        kept = x[:, :, :, 1:].mean(dim=2).reshape(b * s, length - 1, w)
    else:
        kept, keep = _select_tokens(x[:, :, :, 1:].reshape(b * s, per * (length - 1), w), stage, method,
                                    training, s)
    parts = seg_mask.view(b, s, per)
    return (torch.cat([cls, kept], dim=1), parts.any(dim=-1) if segment_valid == "any" else parts[..., -1],
            keep)


def reduce_tokens(x: Tensor, seg_mask: Tensor, stage: ClusterStage, method: str, training: bool,
                  segment_valid: str = "any") -> tuple[Tensor, Tensor]:
    """Apply one stage. ``x`` [B·G, 1+n, W] (G sequences per video), ``seg_mask`` bool [B, G].

    Returns x [B·S, 1+K, W] and the segment mask [B, S] (a segment is valid when its last
    sequence is).
    """
    x, seg_mask, _ = _reduce(x, seg_mask, stage, method, training, segment_valid)
    return x, seg_mask


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


def _shifted_block(block: torch.nn.Module, x: Tensor, frames: int, method: str) -> Tensor:
    """A CLIP block with the original's shift of the residual stream itself.

    Temporal shift (TSM, patch tokens only): once, before attention,
    ``x <- shift(x); x <- x + attn(ln_1(x)); x <- x + mlp(ln_2(x))``.
    Token shift (CLS token only): before attention and again before the MLP,
    ``x <- shift(x); x <- x + attn(ln_1(x)); x <- shift(x); x <- x + mlp(ln_2(x))``.
    """
    if method == "temporal_shift":
        return block(temporal_shift(x, frames, slice(1, None)))
    cls = slice(0, 1)
    x = temporal_shift(x, frames, cls)
    x = x + block.attn(block.ln_1(x))
    x = temporal_shift(x, frames, cls)
    return x + block.mlp(block.ln_2(x))


def encode_segments(visual: torch.nn.Module, video: Tensor, mask: Tensor, reduction: TokenReduction,
                    training: bool = False, trace: list | None = None) -> tuple[Tensor, Tensor]:
    """Run the vision transformer on a batch of videos.

    video float [B, T, 3, H, W], mask bool [B, T] -> segment features [B, G, E] (not normalised;
    G = T for meanP, else the last stage's S) and segment mask bool [B, G].

    ``trace``: a list to which each stage appends ``(stage, kept)``, ``kept`` long [B, S, K] = which
    patches of the video its kept tokens are, as ``frame · P + patch`` (P patches per frame, raster
    order), through every earlier stage (as ToMe's ``trace_source`` records token sources during the
    normal forward); None for pooling and any stage after it (pooled tokens are means over frames).
    The forward is unchanged.
    """
    b, t = video.shape[:2]
    blocks = visual.transformer.resblocks
    stages = list(reduction.stages)
    if stages and stages[-1].block >= len(blocks):
        raise ValueError(f"stage after block {stages[-1].block} but the model has {len(blocks)} blocks")
    x = visual.embed(video.flatten(0, 1))  # [B·T, 1+P, W]
    seg_mask = mask.bool()
    source = None
    if trace is not None:  # every patch token's place in its video: frame · P + patch
        p = x.shape[1] - 1
        source = torch.arange(t * p, device=x.device).view(1, t, p).expand(b, t, p).reshape(b * t, p)
    for i, block in enumerate(blocks):
        while stages and stages[0].block == i:
            stage = stages.pop(0)
            x, seg_mask, keep = _reduce(x, seg_mask, stage, reduction.method, training, reduction.segment_valid)
            if trace is not None:  # the kept tokens' places through every stage; none after pooling
                source = None if source is None or keep is None else \
                    source.reshape(keep.shape[0], -1).gather(1, keep.to(source.device))
                trace.append((stage, None if source is None else source.view(b, stage.segments, -1)))
        if reduction.method in ("token_shift", "temporal_shift"):
            x = _shifted_block(block, x, t, reduction.method)
        else:
            x = block(x)
    feats = visual.head(x[:, 0])
    return feats.view(b, seg_mask.shape[1], -1), seg_mask


def pool_segments(feats: Tensor, seg_mask: Tensor) -> Tensor:
    """Segment-level alignment: normalise each segment feature [B, G, E], masked mean, normalise -> [B, E]."""
    feats = feats / feats.norm(dim=-1, keepdim=True)
    m = seg_mask.to(feats.dtype).unsqueeze(-1)
    pooled = (feats * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    return pooled / pooled.norm(dim=-1, keepdim=True)
