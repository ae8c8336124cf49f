"""Straightforward per-row reference of ``centerclip.model.clustering`` (test oracle, benchmark baseline).

One row at a time, Python loops over rows, KKZ picks, iterations and clusters, plain torch
ops. It implements exactly the algorithm documented in :mod:`centerclip.model.clustering`, with the
same numerical conventions (float32 distances from a centred Gram matrix with an exact zero
diagonal and exact symmetry, float64 sums for the medoid update, first index on ties), so
results must agree bit for bit. It is slow on purpose: clarity over speed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from centerclip.model.clustering import Clusters, _fp32_context

__all__ = ["kmedoids", "spectral", "pairwise_sq_distances_row"]


def _check(x: Tensor, k: int) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be [B, N, D], got shape {tuple(x.shape)}")
    if k < 1 or k > x.shape[1]:
        raise ValueError(f"cannot make k={k} clusters from N={x.shape[1]} tokens per row (need 1 <= k <= N)")


def pairwise_sq_distances_row(xb: Tensor) -> Tensor:
    """Squared Euclidean distances of one row's tokens.

    Args:
        xb: float32 ``[N, D]``.

    Returns:
        float32 ``[N, N]``: symmetric, zero diagonal, non-negative.
    """
    xc = xb - xb.mean(dim=0, keepdim=True)  # distances do not change under translation
    if xc.is_cuda:
        xc = xc.double()  # same TF32-proof choice as the batched code
    sq = torch.linalg.vector_norm(xc, dim=-1).square()
    d2 = torch.addmm(sq[:, None] + sq[None, :], xc, xc.T, alpha=-2.0).float()
    d2 = torch.minimum(d2, d2.T)  # exactly symmetric
    d2 = d2.clamp(min=0.0)
    d2.fill_diagonal_(0.0)
    return d2


def _assign_row(dist: Tensor, medoids: list[int]) -> Tensor:
    """Label of each token = position of its nearest medoid in ``medoids`` (first on ties);
    every medoid is put in its own cluster."""
    labels = dist[medoids].argmin(dim=0)  # [N]
    for j, m in enumerate(medoids):
        labels[m] = j
    return labels


def _kmedoids_row(xb: Tensor, k: int, max_iter: int) -> tuple[Tensor, Tensor]:
    """k-medoids++ of one row ``[N, D]`` (float32, already normalised if requested)."""
    n = xb.shape[0]
    dist = pairwise_sq_distances_row(xb).sqrt()
    if k == n:
        ar = torch.arange(n, device=xb.device)
        return ar, ar.clone()

    # KKZ: largest norm first, then repeatedly the token farthest from its nearest chosen medoid.
    norms = torch.linalg.vector_norm(xb, dim=-1)
    medoids = [int(norms.argmax())]
    nearest = dist[medoids[0]].clone()
    for _ in range(1, k):
        cand = nearest.clone()
        cand[medoids] = -1.0  # never pick a token twice (matters when only duplicates are left)
        nxt = int(cand.argmax())
        medoids.append(nxt)
        nearest = torch.minimum(nearest, dist[nxt])

    for _ in range(max_iter):
        labels = _assign_row(dist, medoids)
        new = []
        for j in range(k):
            members = (labels == j).nonzero().squeeze(1)  # ascending token indices
            sums = dist[members][:, members].double().sum(dim=1)
            new.append(int(members[int(sums.argmin())]))  # first member on ties
        if new == medoids:
            break
        medoids = new

    medoids = sorted(medoids)
    labels = _assign_row(dist, medoids)
    return torch.tensor(medoids, dtype=torch.long, device=xb.device), labels


def _l2n_row(xb: Tensor) -> Tensor:
    return xb / torch.linalg.vector_norm(xb, dim=-1, keepdim=True).clamp_min(1e-12)


def kmedoids(x: Tensor, k: int, *, max_iter: int = 100, l2_normalize: bool = False) -> Clusters:
    """Reference k-medoids++; same contract as :func:`centerclip.model.clustering.kmedoids`."""
    _check(x, k)
    b, n, _ = x.shape
    meds, labs = [], []
    with _fp32_context(x.device):  # no_grad, autocast off
        for i in range(b):
            xb = x[i].detach().float()
            if l2_normalize:
                xb = _l2n_row(xb)
            m, lab = _kmedoids_row(xb, k, max_iter)
            meds.append(m)
            labs.append(lab)
    if b == 0:
        return Clusters(torch.empty(0, k, dtype=torch.long, device=x.device),
                        torch.empty(0, n, dtype=torch.long, device=x.device))
    return Clusters(torch.stack(meds), torch.stack(labs))


def spectral_embedding_row(xb: Tensor, k: int, knn: int | None, sigma: float,
                           dtype: torch.dtype = torch.float32) -> Tensor:
    """Normalised spectral embedding of one row: ``[N, D]`` float32 -> ``[N, k]`` float32."""
    n = xb.shape[0]
    d2 = pairwise_sq_distances_row(xb).to(dtype)
    w = torch.exp(d2 * (-1.0 / (2.0 * sigma * sigma)))
    if knn is not None and knn < n:
        keep = torch.zeros(n, n, dtype=torch.bool, device=xb.device)
        for i in range(n):
            kth = torch.sort(w[i], descending=True).values[knn - 1]
            keep[i] = w[i] >= kth  # all ties with the knn-th largest are kept
        keep = keep | keep.T
        w = torch.where(keep, w, torch.zeros((), dtype=dtype, device=w.device))
    deg = w.sum(dim=1).clamp_min(torch.finfo(dtype).tiny)
    dis = deg.rsqrt()
    lap = -((w * dis[:, None]) * dis[None, :])  # L_sym = I - D^-1/2 W D^-1/2
    lap.diagonal().add_(1.0)
    _, vecs = torch.linalg.eigh(lap)
    u = vecs[:, :k]
    u = u / torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
    return u.float()


def spectral(x: Tensor, k: int, *, knn: int | None = None, sigma: float = 2.0,
             max_iter: int = 100, dtype: torch.dtype = torch.float32) -> Clusters:
    """Reference spectral clustering; same contract as :func:`centerclip.model.clustering.spectral`."""
    _check(x, k)
    b, n, _ = x.shape
    if b == 0 or k == n:
        return kmedoids(x, k, max_iter=max_iter)
    meds, labs = [], []
    with _fp32_context(x.device):  # no_grad, autocast off
        for i in range(b):
            u = spectral_embedding_row(x[i].detach().float(), k, knn, sigma, dtype)
            m, lab = _kmedoids_row(u, k, max_iter)
            meds.append(m)
            labs.append(lab)
    return Clusters(torch.stack(meds), torch.stack(labs))
