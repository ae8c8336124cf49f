"""Exact top-k by cosine: every indexed video is scored, nothing is approximated."""

from __future__ import annotations

import numpy as np


def cosine_scores(texts: np.ndarray, videos: np.ndarray) -> np.ndarray:
    """Cosine similarities float32 [Q, N] of L2-normalised texts [Q, E] and videos [N, E] (a matrix product)."""
    return np.asarray(texts, dtype=np.float32) @ np.asarray(videos, dtype=np.float32).T


def top_k(scores: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """Per row of ``scores`` [Q, N]: the ``min(k, N)`` best ``(column, score)``, best first.

    Ties keep column order (the index is sorted by path, so equal scores list paths alphabetically);
    the selection is exact, including ties across the k-th place.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    scores = np.atleast_2d(np.asarray(scores))
    n = scores.shape[1]
    out = []
    for row in scores:
        if n > 4 * k:
            # every column scoring at least the k-th best value (ties at the boundary included), then
            # a stable sort of those few: the same answer as sorting the whole row, in O(N)
            kth = np.partition(row, n - k)[n - k]
            cand = np.flatnonzero(row >= kth)
        else:
            cand = np.arange(n)
        order = cand[np.argsort(-row[cand], kind="stable")][:k]
        out.append([(int(i), float(row[i])) for i in order])
    return out
