"""FLOPs of the video encoder per video, counted with ``torch.utils.flop_counter.FlopCounterMode``.

Convention: FlopCounterMode's, a multiply-add is 2 FLOPs (a [m, k] x [k, n] product is 2·m·k·n); papers
that quote ViT-B/32 at 4.4 "GFLOPs" per image count multiply-adds, i.e. :attr:`FlopCount.gmacs`.
Counted: matrix products (mm, addmm, bmm, baddbmm), convolutions and attention by torch's own formulas,
plus what torch 2.13 leaves out and this module adds (:data:`EXTRA_FORMULAS`): the CPU attention
kernel, in-place ``baddbmm_`` (the clustering's distance matrix), ``torch.cdist`` (k-medoids with
p != 2) and ``torch.linalg.eigh`` (spectral clustering). Not counted: elementwise ops, norms, softmax,
reductions, sorting, argmin/argmax, gathers: O(tokens·width) each, negligible next to the products.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from centerclip.model import clustering
from centerclip.model.video_encoder import TokenReduction, encode_segments

__all__ = ["EXTRA_FORMULAS", "FlopCount", "count_flops", "gflops_per_video", "video_encoder_flops"]

aten = torch.ops.aten


def _sdpa(q: tuple, k: tuple, v: tuple, *args: Any, **kwargs: Any) -> int:
    """q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv]: scores 2·B·H·Lq·Lk·D plus weights · V
    2·B·H·Lq·Lk·Dv, torch's formula for its CUDA kernels, so that a CPU count equals a GPU count."""
    return 2 * math.prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def _baddbmm_(inp: tuple, a: tuple, b: tuple, *args: Any, **kwargs: Any) -> int:
    """a [B, N, K] @ b [B, K, M]: 2·B·N·K·M, as torch counts the out-of-place baddbmm."""
    return 2 * a[0] * a[1] * a[2] * b[2]


def _cdist(x1: tuple, x2: tuple, *args: Any, **kwargs: Any) -> int:
    """x1 [B, N, D], x2 [B, M, D]: 3·B·N·M·D (a difference, |·|^p and a sum per pair and channel)."""
    return 3 * math.prod(x1[:-1]) * x2[-2] * x1[-1]


def _eigh(a: tuple, uplo: str = "L", compute_v: bool = True, *args: Any, **kwargs: Any) -> int:
    """a [..., n, n]: 9·n³ per matrix with eigenvectors, 4·n³/3 without. The symmetric QR algorithm's
    cost in Golub & Van Loan, Matrix Computations (§8.3, Algorithm 8.3.3): a convention, as LAPACK's
    divide-and-conquer solver's real work depends on deflation, i.e. on the matrix."""
    n = a[-1]
    return math.prod(a[:-2]) * (9 * n**3 if compute_v else 4 * n**3 // 3)


# op -> formula on argument shapes (FlopCounterMode's custom_mapping): ops that torch 2.13 does not count.
EXTRA_FORMULAS: dict[Any, Callable[..., int]] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa,
    aten.baddbmm_: _baddbmm_,
    aten._cdist_forward: _cdist,
    aten._linalg_eigh: _eigh,
}

_CLUSTERING_CODE = clustering.kmedoids.__code__.co_filename  # the file of centerclip.model.clustering


def _in_clustering() -> bool:
    """Whether the op being counted was called, at any depth, from centerclip.model.clustering."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_code.co_filename != _CLUSTERING_CODE:
        frame = frame.f_back
    return frame is not None


@dataclass(frozen=True)
class FlopCount:
    """FLOPs of one run: ``total``; ``clustering``, the ops called from centerclip.model.clustering
    (k-medoids/spectral, at any depth; a reduction computed elsewhere, e.g. a token-merging method's own
    matching, counts as transformer); ``by_op``, the total per aten op, e.g. ``{"aten.addmm": ...}``."""

    total: int
    clustering: int
    by_op: dict[str, int]

    @property
    def transformer(self) -> int:
        """Everything but the clustering: patch embedding, transformer blocks, head projection."""
        return self.total - self.clustering

    @property
    def gflops(self) -> float:
        return self.total / 1e9

    @property
    def gmacs(self) -> float:
        """Multiply-adds / 1e9, the unit of most papers' "GFLOPs"."""
        return self.total / 2e9


def count_flops(fn: Callable[[], Any]) -> FlopCount:
    """FLOPs of ``fn()``, run once under ``torch.no_grad()``, split into the clustering's and the rest."""
    split = {"seen": 0, "clustering": 0}

    def attributed(formula: Callable[..., int]) -> Callable[..., int]:
        def counted(*args: Any, **kwargs: Any) -> int:
            flops = formula(*args, **kwargs)
            split["seen"] += flops
            if _in_clustering():
                split["clustering"] += flops
            return flops
        return counted

    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    # FlopCounterMode keeps no per-caller record, so every formula it uses (its own and ours, already
    # adapted to its calling convention) is wrapped to see who called the op.
    counter.flop_registry = {op: attributed(f) for op, f in counter.flop_registry.items()}
    with torch.no_grad(), counter:
        fn()
    by_op = {str(op): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    if split["seen"] != sum(by_op.values()):  # a torch release that stops reading counter.flop_registry
        raise RuntimeError("FlopCounterMode did not use the wrapped formulas; the clustering share is unknown")
    return FlopCount(sum(by_op.values()), split["clustering"], by_op)


def video_encoder_flops(visual: nn.Module, reduction: TokenReduction, frames: int, *, seed: int = 0) -> FlopCount:
    """FLOPs of :func:`encode_segments` (eval, ``training=False``) on one video [1, frames, 3, H, W] of seeded
    standard-normal values at ``visual.input_resolution``, every frame real.

    The transformer's count depends on shapes alone. k-medoids iterates until its medoids stop moving,
    so its products (one [N, N] x [N, K] product per row and iteration) count the iterations this input
    needs, on this device: off the CPU convergence is checked every 8 iterations and rows may run up to
    7 more (fixed-point) iterations, so quote CPU counts."""
    side = visual.input_resolution
    device = next(visual.parameters()).device
    gen = torch.Generator().manual_seed(seed)  # CPU generator: the same values on every device
    video = torch.randn(1, frames, 3, side, side, generator=gen).to(device)
    mask = torch.ones(1, frames, dtype=torch.bool, device=device)
    was_training = visual.training
    visual.eval()
    try:
        return count_flops(lambda: encode_segments(visual, video, mask, reduction, training=False))
    finally:
        visual.train(was_training)


def gflops_per_video(model: nn.Module, reduction: TokenReduction | None = None, frames: int = 12, *,
                     seed: int = 0) -> float:
    """GFLOPs (FLOPs / 1e9) per video of a RetrievalModel (its own reduction unless given), a CLIP
    or its VisionTransformer."""
    reduction = reduction if reduction is not None else getattr(model, "reduction", None)
    if reduction is None:
        raise ValueError("give the TokenReduction: only a RetrievalModel carries its own")
    visual = getattr(getattr(model, "clip", model), "visual", model)
    return video_encoder_flops(visual, reduction, frames, seed=seed).gflops
