"""The model core on an accelerator: clustering, CLIP and the video encoder on CUDA.

Skipped on machines without CUDA (CI has none); ``bench/gpu.sh`` runs this file first on a GPU
machine. ``CENTERCLIP_TEST_DEVICE=cpu`` runs the same tests on the CPU, to check the tests
themselves before spending device time (the TF32 and host-synchronisation tests stay CUDA-only).

What the CPU suite cannot show and these do: the accelerator branches of
``centerclip.model.clustering`` (one slice of rows, a convergence check every 8 iterations, the
float64 Gram product that keeps TF32 out of the distances), batched vs per-row agreement with
cuBLAS/cuSOLVER, and the encoder's equivalences, autocast and gradients on the device.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from centerclip.model import clustering as C
from centerclip.model import clustering_reference as R
from centerclip.model.clip import CLIP, load
from centerclip.model.retrieval import RetrievalModel
from centerclip.model.video_encoder import ClusterStage, TokenReduction
from tests.model_inputs import TINY, assert_same_clusters, blobs, encode, same_partition, video_batch

DEVICE = torch.device(os.environ.get("CENTERCLIP_TEST_DEVICE", "cuda"))
pytestmark = pytest.mark.skipif(
    DEVICE.type == "cuda" and not torch.cuda.is_available(),
    reason="needs a CUDA device (bench/gpu.sh runs this file on a GPU machine)",
)
cuda_only = pytest.mark.skipif(DEVICE.type != "cuda", reason="CUDA-specific behaviour")


@pytest.fixture(autouse=True)
def _no_tf32():
    """Exact fp32 matmuls unless a test asks otherwise (PyTorch's default; restored after)."""
    if DEVICE.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _randn(*shape: int, seed: int) -> torch.Tensor:
    """Standard normal tokens drawn on the CPU (same values whatever the device), then moved."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


# ----------------------------------------------------------------------------- clustering


@pytest.mark.parametrize("b,n,d,k,l2", [(6, 147, 768, 49, False), (5, 196, 768, 49, False),
                                         (8, 60, 64, 10, True), (3, 33, 8, 1, False)])
def test_kmedoids_on_device_matches_the_row_loop(b, n, d, k, l2):
    x = _randn(b, n, d, seed=b + n)
    res = C.kmedoids(x, k, l2_normalize=l2)
    assert res.medoids.device == x.device and res.labels.device == x.device
    assert bool((res.medoids.diff(dim=1) > 0).all())
    assert_same_clusters(res, R.kmedoids(x, k, l2_normalize=l2))


def test_kmedoids_on_device_finds_the_groups_the_cpu_finds():
    x, truth = blobs(4, 6, 16, seed=3, k=8)
    res = C.kmedoids(x.to(DEVICE), 8)
    assert same_partition(res.labels, truth)
    # Each medoid is in a different group, on the device as on the CPU.
    cpu = C.kmedoids(x, 8)
    for r in range(4):
        assert sorted(truth[r, res.medoids[r].cpu()].tolist()) == list(range(8))
    assert same_partition(res.labels, cpu.labels)


@cuda_only
def test_tf32_does_not_reach_the_distances():
    # Training may switch TF32 on globally; the clustering's distances must not change with it.
    x = _randn(8, 147, 768, seed=4)
    exact = C.kmedoids(x, 49), C.spectral(x, 49, knn=15)
    torch.backends.cuda.matmul.allow_tf32 = True
    assert_same_clusters(C.kmedoids(x, 49), exact[0])
    assert_same_clusters(C.spectral(x, 49, knn=15), exact[1])


@cuda_only
def test_host_synchronisations_do_not_grow_with_batch_or_iterations():
    # The contract: no host synchronisation per iteration. Count the synchronising calls
    # (PyTorch's sync debug mode warns once per call) for small and large batches.
    def syncs(b: int, max_iter: int) -> int:
        x = _randn(b, 147, 768, seed=b)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                C.kmedoids(x, 49, max_iter=max_iter)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    few, many = syncs(4, 16), syncs(64, 16)
    assert many <= few + 2, (few, many)  # not per row
    # One symmetry check and one convergence check per 8 iterations, plus a handful of fixed ones.
    assert syncs(64, 64) <= few + 8, (few, syncs(64, 64))


@pytest.mark.parametrize("knn", [None, 5])
def test_spectral_on_device_finds_separated_groups(knn):
    x, truth = blobs(3, 10, 8, seed=11)
    for dtype in (torch.float32, torch.float64):
        res = C.spectral(x.to(DEVICE), 4, knn=knn, sigma=1.0, dtype=dtype)
        assert res.medoids.device.type == DEVICE.type
        assert same_partition(res.labels, truth)
        for r in range(3):
            assert sorted(truth[r, res.medoids[r].cpu()].tolist()) == [0, 1, 2, 3]


def test_clustering_under_autocast_sees_float32():
    x = _randn(4, 49, 32, seed=5)
    ref = C.kmedoids(x, 10)
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast(DEVICE.type, dtype=dtype):
            assert_same_clusters(C.kmedoids(x, 10), ref)
        low = x.to(dtype)
        assert_same_clusters(C.kmedoids(low, 10), C.kmedoids(low.float(), 10))


# ----------------------------------------------------------------------------- CLIP and the encoder


@pytest.fixture(scope="module")
def clip_pair():
    """The same tiny random CLIP on the CPU and on the device."""
    torch.manual_seed(0)
    cpu = CLIP(TINY).eval()
    dev = CLIP.from_state_dict(cpu.state_dict()).to(DEVICE).eval()
    return cpu, dev


def test_load_to_device_gives_the_cpu_features(tmp_path, clip_pair):
    cpu, _ = clip_pair
    path = tmp_path / "tiny.pt"
    torch.save(cpu.state_dict(), path)
    dev = load(path, device=DEVICE)
    assert next(dev.parameters()).device.type == DEVICE.type
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    tokens = torch.randint(1, 1000, (2, 16), generator=torch.Generator().manual_seed(3))
    tokens[:, -1] = 49407
    with torch.no_grad():
        torch.testing.assert_close(dev.encode_image(images.to(DEVICE)).cpu(), cpu.encode_image(images),
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dev.encode_text(tokens.to(DEVICE)).cpu(), cpu.encode_text(tokens),
                                   rtol=1e-4, atol=1e-5)


def test_encoder_equivalences_on_device(clip_pair):
    cpu, dev = clip_pair
    video, mask = video_batch()
    with torch.no_grad():
        meanp = encode(dev, TokenReduction("meanP"), video, mask)
        torch.testing.assert_close(meanp.cpu(), encode(cpu, TokenReduction("meanP"), video, mask),
                                   rtol=1e-4, atol=1e-5)
        # One frame per segment and K = all patches: the clustering stage keeps every token.
        keep_all = TokenReduction("centerclip", (ClusterStage(block=2, segments=4, clusters=dev.visual.grid ** 2),))
        torch.testing.assert_close(encode(dev, keep_all, video, mask), meanp)


@pytest.mark.parametrize("method,stages", [
    ("centerclip", (ClusterStage(2, 2, 8),)),
    ("centerclip", (ClusterStage(1, 2, 8), ClusterStage(3, 1, 6))),
    ("centerclip", (ClusterStage(2, 2, 8, algorithm="spectral", knn=10),)),
    ("pooling", (ClusterStage(2, 2, 8),)),
    ("sparse", (ClusterStage(2, 2, 8),)),
    ("token_shift", ()),
    ("temporal_shift", ()),
])
def test_every_method_on_device_agrees_with_the_cpu(clip_pair, method, stages):
    cpu, dev = clip_pair
    video, mask = video_batch()
    red = TokenReduction(method, stages)
    with torch.no_grad():
        v = encode(dev, red, video, mask)
        ref = encode(cpu, red, video, mask)
    assert v.device.type == DEVICE.type and bool(torch.isfinite(v).all())
    if any(s.algorithm == "spectral" for s in stages):
        # Eigenvectors from cuSOLVER and LAPACK differ by rounding, which may move a medoid
        # between two near-equivalent tokens: close features, not necessarily equal ones.
        assert torch.nn.functional.cosine_similarity(v.cpu(), ref).min() > 0.95
    else:
        # k-medoids keeps the same tokens on both devices here (no near-ties): same features.
        torch.testing.assert_close(v.cpu(), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_on_device(clip_pair, dtype):
    _, dev = clip_pair
    video, mask = video_batch()
    red = TokenReduction("centerclip", (ClusterStage(2, 2, 8),))
    with torch.no_grad():
        ref = encode(dev, red, video, mask)
        with torch.autocast(DEVICE.type, dtype=dtype):
            v = encode(dev, red, video, mask)
    assert bool(torch.isfinite(v).all())
    assert torch.nn.functional.cosine_similarity(v.float(), ref).min() > 0.98


def test_gradients_on_device_reach_clip_through_kept_tokens():
    torch.manual_seed(0)
    model = RetrievalModel(CLIP(TINY), TokenReduction("centerclip", (ClusterStage(2, 2, 8),))).to(DEVICE)
    video, mask = video_batch()
    tokens = torch.randint(1, 1000, (2, 16), generator=torch.Generator().manual_seed(4))
    tokens[:, -1] = 49407
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
        logits = model(video.to(DEVICE), mask.to(DEVICE), tokens.to(DEVICE))
    logits.float().diag().sum().backward()
    vis = model.clip.visual
    assert vis.conv1.weight.grad.abs().sum() > 0  # before the clustering stage
    assert vis.transformer.resblocks[3].mlp.c_fc.weight.grad.abs().sum() > 0  # after it
    assert all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
