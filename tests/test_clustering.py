"""Tests for centerclip.model.clustering (batched) against centerclip.model.clustering_reference (per-row loops)."""

from __future__ import annotations

import pytest
import torch

from centerclip.model import clustering as C
from centerclip.model import clustering_reference as R
from tests.model_inputs import assert_same_clusters, blobs, same_partition


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _dist(x: torch.Tensor, l2: bool = False) -> torch.Tensor:
    """Distances exactly as both implementations see them ([B, N, N], float32)."""
    x = x.float()
    if l2:
        x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.stack([R.pairwise_sq_distances_row(r).sqrt() for r in x])


def _check_invariants(res: C.Clusters, x: torch.Tensor, k: int, dist: torch.Tensor | None = None) -> None:
    b, n, _ = x.shape
    med, lab = res.medoids, res.labels
    assert isinstance(res, C.Clusters)
    assert med.shape == (b, k) and lab.shape == (b, n)
    assert med.dtype == torch.long and lab.dtype == torch.long
    assert med.device == x.device and lab.device == x.device
    assert bool((med >= 0).all()) and bool((med < n).all())
    if k > 1:
        assert bool((med[:, 1:] > med[:, :-1]).all()), "medoids must be strictly ascending (hence unique)"
    assert bool((lab >= 0).all()) and bool((lab < k).all())
    ar = torch.arange(k).expand(b, k)
    assert torch.equal(lab.gather(1, med), ar), "each medoid must be in its own cluster"
    if dist is not None:
        # Every token is assigned to (one of) its nearest medoids.
        to_med = dist.gather(2, med[:, None, :].expand(b, n, k))  # [B, N, k]
        assigned = to_med.gather(2, lab[:, :, None]).squeeze(2)
        assert torch.equal(assigned, to_med.min(dim=2).values)


# ----------------------------------------------------------------------------- distances


def test_pairwise_distances_exact_diagonal_symmetric_accurate():
    g = _gen(0)
    # CLIP-like tokens: a large shared offset (outlier channels) plus small variation, and a
    # near-duplicate pair: centring keeps the error far below the original's ~0.03.
    off = torch.randn(64, generator=g) * 2
    off[:2] = 60
    x = off + 0.3 * torch.randn(3, 40, 64, generator=g)
    x[:, 1] = x[:, 0] + 0.01 * torch.randn(64, generator=g)
    d2 = C._pairwise_sq_distances(x)
    assert torch.equal(d2, d2.transpose(1, 2))
    assert bool((torch.diagonal(d2, dim1=1, dim2=2) == 0).all())
    truth = torch.cdist(x.double(), x.double())
    assert torch.allclose(d2.sqrt().double(), truth, atol=1e-3, rtol=0)
    # Batched == per-row reference, bit for bit.
    assert torch.equal(d2, torch.stack([R.pairwise_sq_distances_row(r) for r in x]))


# ----------------------------------------------------------------------------- k-medoids


@pytest.mark.parametrize("b,n,d,k", [(5, 30, 16, 7), (3, 147, 64, 49), (4, 20, 3, 1), (2, 12, 5, 11)])
def test_kmedoids_invariants(b, n, d, k):
    x = torch.randn(b, n, d, generator=_gen(b * n + k))
    res = C.kmedoids(x, k)
    _check_invariants(res, x, k, _dist(x))
    assert_same_clusters(res, C.kmedoids(x, k))  # deterministic


def test_kmedoids_hand_checked_1d():
    # Two obvious groups on a line. KKZ: first = largest norm = 12 (index 5), then the
    # farthest from it = 0 (index 0). Medoids converge to the middle of each group.
    x = torch.tensor([0.0, 1.0, 2.0, 10.0, 11.0, 12.0]).view(1, 6, 1)
    init = C.kmedoids(x, 2, max_iter=0)  # no iteration: KKZ picks, sorted
    assert init.medoids.tolist() == [[0, 5]]
    res = C.kmedoids(x, 2)
    assert res.medoids.tolist() == [[1, 4]]
    assert res.labels.tolist() == [[0, 0, 0, 1, 1, 1]]
    assert_same_clusters(res, R.kmedoids(x, 2))


def test_kmedoids_k1_is_global_medoid():
    x = torch.randn(3, 25, 4, generator=_gen(1))
    res = C.kmedoids(x, 1)
    d = _dist(x).double()
    assert res.medoids.squeeze(1).tolist() == d.sum(-1).argmin(-1).tolist()
    assert bool((res.labels == 0).all())


@pytest.mark.parametrize("l2", [False, True])
@pytest.mark.parametrize("b,n,d,k", [(6, 40, 8, 5), (4, 147, 96, 49), (3, 60, 768, 20), (8, 15, 2, 4)])
def test_kmedoids_matches_reference(b, n, d, k, l2):
    x = torch.randn(b, n, d, generator=_gen(7 * n + d + k)) * 1.5 + 0.3
    assert_same_clusters(C.kmedoids(x, k, l2_normalize=l2), R.kmedoids(x, k, l2_normalize=l2))


def test_kmedoids_max_iter_respected_like_reference():
    x = torch.randn(6, 50, 8, generator=_gen(3))
    for it in (0, 1, 2, 3, 9):
        assert_same_clusters(C.kmedoids(x, 9, max_iter=it), R.kmedoids(x, 9, max_iter=it))


@pytest.mark.parametrize("every", [3, 8])
def test_accelerator_check_schedule_gives_same_result(monkeypatch, every):
    # On CUDA convergence is checked every 8 iterations (converged rows keep iterating as
    # fixed points); emulate that schedule on the CPU.
    monkeypatch.setattr(C, "_check_every", lambda device: every)
    x = torch.randn(12, 60, 16, generator=_gen(21))
    for it in (2, 5, 100):
        assert_same_clusters(C.kmedoids(x, 12, max_iter=it), R.kmedoids(x, 12, max_iter=it))


@pytest.mark.parametrize("rows_per_slice", ["all", 5])
def test_slicing_of_the_batch_changes_nothing(monkeypatch, rows_per_slice):
    # The CPU works in slices of rows; an accelerator uses one slice (all rows), and a slice size
    # that does not divide B leaves a short last slice: every layout gives the loop's results.
    monkeypatch.setattr(C, "_slice_rows", lambda b, device: b if rows_per_slice == "all" else rows_per_slice)
    x = torch.randn(13, 40, 16, generator=_gen(23))
    assert_same_clusters(C.kmedoids(x, 8), R.kmedoids(x, 8))
    assert_same_clusters(C.kmedoids(x, 8, l2_normalize=True), R.kmedoids(x, 8, l2_normalize=True))
    for knn in (None, 10):
        assert_same_clusters(C.spectral(x, 6, knn=knn, sigma=4.0), R.spectral(x, 6, knn=knn, sigma=4.0))


def test_symmetrisation_fallback(monkeypatch):
    # If the GEMM ever returned a non-symmetric Gram, min(d2, d2^T) takes over.
    x = torch.randn(3, 30, 8, generator=_gen(22))
    expect = C._pairwise_sq_distances(x)
    monkeypatch.setattr(torch, "equal", lambda a, b: False)
    assert (C._pairwise_sq_distances(x) == expect).all()


def test_ties_all_duplicates():
    # All tokens equal: KKZ takes the first index, then never re-picks a chosen one;
    # non-medoid duplicates go to the first medoid; each medoid keeps its own cluster.
    x = torch.ones(2, 6, 3)
    res = C.kmedoids(x, 3)
    assert res.medoids.tolist() == [[0, 1, 2]] * 2
    assert res.labels.tolist() == [[0, 1, 2, 0, 0, 0]] * 2
    assert_same_clusters(res, R.kmedoids(x, 3))


def test_ties_symmetric_configurations():
    # Equal norms (-2 and 2): first index wins; two-member clusters: first member wins.
    x = torch.tensor([-2.0, -1.0, 1.0, 2.0]).view(1, 4, 1)
    res = C.kmedoids(x, 2)
    assert res.medoids.tolist() == [[0, 2]] and res.labels.tolist() == [[0, 0, 1, 1]]
    assert_same_clusters(res, R.kmedoids(x, 2))
    # Equidistant token (5 between 0 and 10) joins the first medoid in KKZ order (10), and
    # the final relabelling after sorting keeps it with its nearest medoid.
    x = torch.tensor([0.0, 5.0, 10.0]).view(1, 3, 1)
    res = C.kmedoids(x, 2)
    assert res.medoids.tolist() == [[0, 1]] and res.labels.tolist() == [[0, 1, 1]]
    assert_same_clusters(res, R.kmedoids(x, 2))


@pytest.mark.parametrize("seed", range(4))
def test_ties_integer_grid_matches_reference(seed):
    # Small integer coordinates: many duplicate tokens and exactly equal distances/sums.
    g = _gen(100 + seed)
    x = torch.randint(0, 3, (5, 40, 2), generator=g).float()
    for k in (3, 8, 17):
        res = C.kmedoids(x, k)
        _check_invariants(res, x, k, _dist(x))
        assert_same_clusters(res, R.kmedoids(x, k))


def test_low_precision_input_and_autocast():
    x = torch.randn(4, 49, 32, generator=_gen(5)).to(torch.bfloat16)
    ref = C.kmedoids(x.float(), 10)
    assert_same_clusters(C.kmedoids(x, 10), ref)
    assert_same_clusters(C.kmedoids(x.half(), 10), C.kmedoids(x.half().float(), 10))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_same_clusters(C.kmedoids(x.float(), 10), ref)
        assert_same_clusters(C.spectral(x.float(), 5, sigma=8.0), C.spectral(x.float(), 5, sigma=8.0))
    assert_same_clusters(C.spectral(x, 5, sigma=8.0), C.spectral(x.float(), 5, sigma=8.0))


def test_no_grad_and_input_untouched():
    x = torch.randn(2, 20, 8, generator=_gen(6), requires_grad=True)
    x0 = x.detach().clone()
    res = C.kmedoids(x, 4, l2_normalize=True)
    assert not res.medoids.requires_grad
    assert torch.equal(x.detach(), x0)


def test_edge_cases_k_and_batch():
    x = torch.randn(3, 10, 4, generator=_gen(8))
    with pytest.raises(ValueError, match="k=11"):
        C.kmedoids(x, 11)
    with pytest.raises(ValueError, match="k=11"):
        C.spectral(x, 11)
    with pytest.raises(ValueError):
        C.kmedoids(x, 0)
    with pytest.raises(ValueError):
        C.kmedoids(x[0], 2)  # not [B, N, D]
    for fn in (C.kmedoids, C.spectral):
        res = fn(x, 10)
        assert res.medoids.tolist() == [list(range(10))] * 3
        assert res.labels.tolist() == [list(range(10))] * 3
        empty = fn(x[:0], 4)
        assert empty.medoids.shape == (0, 4) and empty.labels.shape == (0, 10)
        assert empty.medoids.dtype == torch.long
    # k == N with duplicate tokens still keeps every token.
    dup = torch.zeros(1, 5, 2)
    assert C.kmedoids(dup, 5).medoids.tolist() == [[0, 1, 2, 3, 4]]
    assert C.kmedoids(dup, 4).medoids.tolist() == [[0, 1, 2, 3]]


# ----------------------------------------------------------------------------- spectral


@pytest.mark.parametrize("knn", [None, 5])
def test_spectral_finds_separatedblobs(knn):
    x, truth = blobs(3, 10, 8, seed=11)
    res = C.spectral(x, 4, knn=knn, sigma=1.0)
    _check_invariants(res, x, 4)
    assert same_partition(res.labels, truth)
    # Medoids select original tokens: one per blob.
    for b in range(3):
        assert sorted(truth[b, res.medoids[b]].tolist()) == [0, 1, 2, 3]
    assert_same_clusters(res, R.spectral(x, 4, knn=knn, sigma=1.0))


def test_spectral_underflowing_weights_no_nan():
    # Raw large-norm tokens with sigma=2: every off-diagonal weight underflows to 0 even in
    # float64 (|xi-xj|^2/8 ~ 1700). Degrees stay >= 1 (self weight) and nothing is NaN.
    x = 3.0 * torch.randn(2, 30, 768, generator=_gen(12))
    u = C._spectral_embedding(x, 6, None, 2.0, torch.float64)
    assert bool(torch.isfinite(u).all())
    for knn in (None, 4):
        res = C.spectral(x, 6, knn=knn)
        _check_invariants(res, x, 6)
        assert_same_clusters(res, R.spectral(x, 6, knn=knn))


@pytest.mark.parametrize("knn", [None, 5])
def test_spectral_float64_option_matches_reference_and_float32_partitions(knn):
    # blobs at patch-token-like spacing: float32 (the original's precision, the default) and
    # float64 graphs give the same partition; each precision agrees with the per-row reference
    x, truth = blobs(3, 10, 8, seed=21)
    r32 = C.spectral(x, 4, knn=knn, sigma=1.0)
    r64 = C.spectral(x, 4, knn=knn, sigma=1.0, dtype=torch.float64)
    assert same_partition(r64.labels, truth) and same_partition(r32.labels, truth)
    assert_same_clusters(r64, R.spectral(x, 4, knn=knn, sigma=1.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
        C.spectral(x, 4, dtype=torch.float16)


@pytest.mark.parametrize("knn,sigma", [(None, 2.0), (None, 6.0), (8, 4.0), (15, 2.0)])
def test_spectral_matches_reference_random(knn, sigma):
    x = torch.randn(4, 36, 16, generator=_gen(13 + (knn or 0)))
    res = C.spectral(x, 6, knn=knn, sigma=sigma)
    _check_invariants(res, x, 6)
    assert_same_clusters(res, R.spectral(x, 6, knn=knn, sigma=sigma))
    assert_same_clusters(res, C.spectral(x, 6, knn=knn, sigma=sigma))  # deterministic


def test_affinity_knn_or_symmetrisation():
    x = torch.randn(3, 25, 6, generator=_gen(14))
    d2 = C._pairwise_sq_distances(x)
    dense = C._affinity(d2, None, 1.5, torch.float64)
    assert bool((torch.diagonal(dense, dim1=1, dim2=2) == 1).all())
    assert torch.equal(dense, dense.transpose(1, 2))
    knn = 4
    w = C._affinity(d2, knn, 1.5, torch.float64)
    for b in range(3):
        nbr = torch.zeros(25, 25, dtype=torch.bool)
        for i in range(25):  # brute force: the knn largest weights of row i (self included)
            nbr[i, torch.argsort(dense[b, i], descending=True, stable=True)[:knn]] = True
        assert bool(nbr.diagonal().all())
        expect = torch.where(nbr | nbr.T, dense[b], torch.zeros((), dtype=torch.float64))
        assert torch.equal(w[b], expect)
    assert torch.equal(C._affinity(d2, 25, 1.5, torch.float64), dense)
