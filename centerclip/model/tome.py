"""ToMe token merging (Bolya et al., ICLR 2023) for our batch-first CLIP vision blocks, written from scratch.

Shapes: ``R`` rows (sequences), ``L`` tokens (CLS at 0), ``C`` metric channels, ``W`` width, ``N`` original
patches a token may stand for, ``r`` tokens merged away.

Bipartite split: A = even positions (0, 2, 4, ...; holds the CLS), B = odd positions. A merge with ``r > 0``
outputs **the kept A tokens in their original relative order, then every B token in its original order**, so
the CLS token stays at position 0 (the encoder reads ``x[:, 0]``). ``r == 0`` is the identity (no reordering).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from centerclip.model.clip import ResidualAttentionBlock

__all__ = [
    "Merge",
    "bipartite_soft_matching",
    "merge_source",
    "merge_weighted",
    "proportional_attention",
    "tome_block",
    "tome_r_schedule",
]


@dataclass(frozen=True)
class Merge:
    """How one bipartite merge maps ``L`` tokens to ``L - r``; indices are local to their side.

    kept: [R, L_A - r] indices into A (``x[:, 0::2]``) of the A tokens kept, ascending.
    src:  [R, r] indices into A of the A tokens merged away.
    dst:  [R, r] indices into B (``x[:, 1::2]``) of the B token each ``src`` token merges into.
    With ``r == 0`` the merge functions return their input unchanged (no A-then-B reordering).
    """

    kept: Tensor
    src: Tensor
    dst: Tensor

    @property
    def r(self) -> int:
        return self.src.shape[1]


def _clamp_r(length: int, r: int, protect_cls: bool) -> int:
    """The r a merge of ``length`` tokens can take: at most the A tokens that may merge, and at most |B|.

    With the CLS protected |A| - 1 <= |B| always; unprotected, the |B| bound is ToMe's ``length // 2``.
    """
    n_a, n_b = (length + 1) // 2, length // 2
    return max(0, min(r, n_a - int(protect_cls), n_b))


def bipartite_soft_matching(metric: Tensor, r: int, protect_cls: bool = True) -> Merge:
    """ToMe's matching: merge the ``r`` A tokens most similar (cosine) to their best B token into it.

    Args:
        metric: [R, L, C] per-token keys (averaged over heads).
        r: tokens to remove; clamped to [0, min(L_A - protect_cls, L_B)] (ToMe's bound).
        protect_cls: never merge position 0 (its similarities are -inf, and r leaves it room).

    Returns:
        A ``Merge``. Ties are deterministic: each A token's best match is the lowest-index B token among
        equal maxima (``argmax``), and A tokens are ranked by a stable descending sort, so equal scores
        merge the lower-index A token first.
    """
    rows, length, _ = metric.shape
    r = _clamp_r(length, r, protect_cls)
    n_a = (length + 1) // 2
    idx = metric.new_empty(rows, 0, dtype=torch.long)
    if r == 0:  # nothing merges: the identity, which keeps the original token order
        return Merge(torch.arange(n_a, device=metric.device).expand(rows, n_a), idx, idx)
    with torch.no_grad():  # the matching is a discrete choice; no gradient flows through it
        metric = metric / metric.norm(dim=-1, keepdim=True)
        scores = metric[:, 0::2] @ metric[:, 1::2].transpose(1, 2)  # [R, L_A, L_B]
        if protect_cls:
            scores[:, 0] = -math.inf
        best_dst = scores.argmax(dim=-1)  # [R, L_A]; argmax documents first-index ties
        best = scores.gather(-1, best_dst.unsqueeze(-1)).squeeze(-1)
        order = torch.sort(best, dim=-1, descending=True, stable=True).indices
        src = order[:, :r]
        kept = order[:, r:].sort(dim=-1).values  # original relative order keeps the CLS first
        return Merge(kept, src, best_dst.gather(-1, src))


def _merge_sum(merge: Merge, x: Tensor) -> Tensor:
    """[R, L, K] -> [R, L - r, K]: kept A rows, then B rows plus the A rows merged into them (summed)."""
    if merge.r == 0:
        return x
    a, b = x[:, 0::2], x[:, 1::2]
    channels = x.shape[-1]

    def take(index: Tensor) -> Tensor:
        return index.unsqueeze(-1).expand(-1, -1, channels)

    kept = a.gather(1, take(merge.kept))
    b = b.scatter_add(1, take(merge.dst), a.gather(1, take(merge.src)))
    return torch.cat([kept, b], dim=1)


def merge_weighted(merge: Merge, x: Tensor, size: Tensor) -> tuple[Tensor, Tensor]:
    """Size-weighted average of merged tokens.

    Args:
        x: [R, L, W]; size: [R, L, 1] float, how many original tokens each token stands for.

    Returns:
        ([R, L - r, W] with each B token ``(x_b s_b + sum x_a s_a) / (s_b + sum s_a)``, [R, L - r, 1] summed sizes).
    """
    if merge.r == 0:
        return x, size
    total = _merge_sum(merge, size)
    merged = _merge_sum(merge, x * size) / total  # promotes to size's dtype, so weights stay exact
    return merged.to(x.dtype), total


def merge_source(merge: Merge, source: Tensor) -> Tensor:
    """[R, L, N] -> [R, L - r, N]: which original patches each token covers.

    Bool rows are OR-ed; float rows are summed (for a 0/1 partition the same thing, and the row sums stay
    equal to the sizes ``merge_weighted`` returns).
    """
    if source.dtype == torch.bool:
        return _merge_sum(merge, source.to(torch.uint8)) > 0
    return _merge_sum(merge, source)


def proportional_attention(q: Tensor, k: Tensor, v: Tensor, size: Tensor | None) -> Tensor:
    """``softmax(q k^T / sqrt(d) + log size_key) v``: a token standing for s tokens gets s times the weight.

    Args:
        q, k, v: [R, H, L, d]; size: [R, L, 1] or None (all ones: plain attention, no mask).

    Returns:
        [R, H, L, d].
    """
    mask = None if size is None else size.log()[:, None, None, :, 0].to(q.dtype)  # [R, 1, 1, L], keys' axis
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def tome_block(
    block: ResidualAttentionBlock, x: Tensor, size: Tensor | None, r: int, source: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One pre-LN block the ToMe way: attention (proportional), merge ``r`` tokens, then the MLP.

    Args:
        block: a ``ResidualAttentionBlock`` (its ``attn`` is not called, so q, k, v are projected once).
        x: [R, L, W]; size: [R, L, 1] or None (all ones); source: [R, L, N] or None.

    Returns:
        (x [R, L - r', W], size [R, L - r', 1], source [R, L - r', N] or None), r' the clamped r.
    """
    rows, length, width = x.shape
    attn = block.attn
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(rows, length, 3, attn.heads, width // attn.heads).permute(2, 0, 3, 1, 4)
    out = proportional_attention(q, k, v, size)
    x = x + attn.out_proj(out.transpose(1, 2).reshape(rows, length, width))
    if size is None:
        size = x.new_ones(rows, length, 1, dtype=torch.float32)
    merge = bipartite_soft_matching(k.mean(dim=1), r)  # keys averaged over heads: [R, L, d]
    x, size = merge_weighted(merge, x, size)
    if source is not None:
        source = merge_source(merge, source)
    return x + block.mlp(block.ln_2(x)), size, source


def tome_r_schedule(tokens: int, r: int, blocks: int, protect_cls: bool = True) -> list[int]:
    """The r each of ``blocks`` blocks actually merges, starting from ``tokens`` tokens (CLS included)."""
    schedule = []
    for _ in range(blocks):
        step = _clamp_r(tokens, r, protect_cls)
        schedule.append(step)
        tokens -= step
    return schedule
