"""FLOPs per video of the video encoder (centerclip.model.flops) at ViT-B/32, 12 frames, 224 px.

The counter's numbers are checked against counts written out from the architecture's shapes (a
multiply-add = 2 FLOPs, FlopCounterMode's convention). Three ViT-B/32 forwards (meanP, CenterCLIP
k-medoids and spectral; ~0.5-1 s each on 2 idle cores), the comparisons between methods on a width-64
tower of the same geometry; everything else runs on tiny tensors.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from centerclip.model.clip import CLIPConfig, VisionTransformer
from centerclip.model.clustering import kmedoids, spectral
from centerclip.model.flops import count_flops, gflops_per_video, video_encoder_flops
from centerclip.model.retrieval import RetrievalModel
from centerclip.model.video_encoder import ClusterStage, TokenReduction

VIT_B32 = CLIPConfig(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12)  # OpenAI's ViT-B/32 dimensions
W, E, PATCH, BLOCKS = VIT_B32.vision_width, VIT_B32.embed_dim, VIT_B32.vision_patch_size, VIT_B32.vision_layers
P = (VIT_B32.image_resolution // PATCH) ** 2  # 49 patches per frame
T, S, K, AFTER = 12, 4, 49, 6  # 12 frames; the stage (B6 − 4, 49)
N = (T // S) * P  # 147 patch tokens clustered per segment

REDUCTIONS = {
    "meanP": TokenReduction(),
    "token_shift": TokenReduction("token_shift"),
    "centerclip": TokenReduction("centerclip", (ClusterStage(AFTER, S, K),)),
    "spectral": TokenReduction("centerclip", (ClusterStage(AFTER, S, K, algorithm="spectral"),)),
    "pooling": TokenReduction("pooling", (ClusterStage(AFTER, S, P),)),
}


# ------------------------------------------------------------------ the analytic count


def blocks(n_blocks: int, seqs: int, length: int, w: int = W) -> int:
    """``n_blocks`` transformer blocks of width ``w`` on ``seqs`` sequences of ``length`` tokens: q/k/v
    projection, attention scores, attention · V, output projection, MLP (w -> 4w -> w). Biases, softmax,
    layer norms and QuickGELU are elementwise: FlopCounterMode counts addmm as its product only."""
    per_seq = (2 * length * w * 3 * w + 2 * length * length * w + 2 * length * length * w + 2 * length * w * w
               + 2 * length * w * 4 * w * 2)
    return n_blocks * seqs * per_seq


def embed(w: int = W) -> int:
    return T * 2 * P * (3 * PATCH * PATCH) * w  # patch embedding: a 32x32x3 -> w product per patch and frame


def head(seqs: int, w: int = W, e: int = E) -> int:
    return seqs * 2 * w * e  # ln_post(CLS) @ proj, per sequence


def meanp(w: int = W, e: int = E) -> int:
    return embed(w) + blocks(BLOCKS, T, 1 + P, w) + head(T, w, e)


def reduced(w: int = W, e: int = E) -> int:
    """Blocks 1-6 on 12 frames of 1 + 49 tokens, blocks 7-12 on 4 segments of 1 + 49 tokens."""
    return embed(w) + blocks(AFTER, T, 1 + P, w) + blocks(BLOCKS - AFTER, S, 1 + K, w) + head(S, w, e)


DISTANCES = S * 2 * N * N * W  # k-medoids' |c_i|² + |c_j|² − 2 c_i·c_j: one [N, W] x [W, N] product per segment
UPDATE = 2 * N * N * K  # one k-medoids update of one segment: distances [N, N] x one-hot [N, K]


# ------------------------------------------------------------------ counts, once per module


def _vit(width: int, embed_dim: int) -> VisionTransformer:
    """CLIP's vision tower at ViT-B/32's geometry (224 px, 32 px patches, 12 blocks), random weights."""
    torch.manual_seed(0)
    return VisionTransformer(VIT_B32.image_resolution, PATCH, width, BLOCKS, width // 64, embed_dim)


@pytest.fixture(scope="module")
def counts():
    """name -> FlopCount of ViT-B/32 on one seeded 12-frame video (three forwards: the slow part of this
    file); also "tokens", what CenterCLIP's stage clustered."""
    visual = _vit(W, E)
    out = {name: video_encoder_flops(visual, REDUCTIONS[name], T) for name in ("meanP", "spectral")}
    seen = []  # block 6's output: [12, 50, W], what the stage cuts into 4 segments of 3 frames
    hook = visual.transformer.resblocks[AFTER - 1].register_forward_hook(lambda m, i, o: seen.append(o.clone()))
    out["centerclip"] = video_encoder_flops(visual, REDUCTIONS["centerclip"], T)
    hook.remove()
    out["tokens"] = seen[0].view(S, T // S, 1 + P, W)[:, :, 1:].reshape(S, N, W)  # frame-major, as _reduce
    return out


@pytest.fixture(scope="module")
def narrow():
    """The same counts on a width-64 tower of ViT-B/32's geometry (same token counts, ~1/100 of the work),
    for the comparisons between methods; plus meanP on a second seed."""
    visual = _vit(64, 32)
    out = {name: video_encoder_flops(visual, red, T) for name, red in REDUCTIONS.items()}
    out["meanP_seed1"] = video_encoder_flops(visual, REDUCTIONS["meanP"], T, seed=1)
    return out


def test_report(counts, narrow):
    """The numbers (pytest -s shows them). Papers' "GFLOPs" are multiply-adds: meanP ViT-B/32 12 frames ≈ 53.
    Pooling's count is the k-medoids one without the clustering (checked on the narrow tower)."""
    rows = {**counts, "pooling": narrow["pooling"]}
    for name in ("meanP", "centerclip", "spectral", "pooling"):
        c = rows[name]
        total = c.total if name != "pooling" else reduced()
        print(f"{name:12s} {total / 1e9:8.3f} GFLOPs ({total / 2e9:7.3f} GMACs), clustering "
              f"{c.clustering / 1e9:.4f}, {total / counts['meanP'].total:.1%} of meanP")


def test_meanp_equals_the_analytic_count(counts, narrow):
    c = counts["meanP"]
    assert c.total == meanp() == 105_811_476_480
    assert c.clustering == 0
    assert c.by_op["aten.convolution"] == embed()
    assert c.by_op["aten.mm"] == head(T)
    assert 52.9 < c.gmacs < 53.0  # ViT-B/32's 4.4 GMACs per image, times 12
    assert narrow["meanP"].total == meanp(64, 32)


def test_meanp_does_not_depend_on_the_input(narrow):
    assert narrow["meanP_seed1"] == narrow["meanP"]


def test_token_shift_is_free(narrow):
    assert narrow["token_shift"] == narrow["meanP"]


def test_pooling_runs_the_reduced_transformer(narrow):
    assert narrow["pooling"].total == narrow["centerclip"].transformer == reduced(64, 32)
    assert narrow["pooling"].clustering == 0


def _iterations(row: torch.Tensor) -> int:
    """How many (assign, update) iterations k-medoids runs on one segment [1, N, W]: a row leaves the
    loop at the first iteration that moves no medoid, i.e. after m* + 1 updates, m* = the fewest updates
    (``max_iter``) that already give the final medoids."""
    final = kmedoids(row, K).medoids
    m = 0
    while not torch.equal(kmedoids(row, K, max_iter=m).medoids, final):
        m += 1
        assert m < 100
    return m + 1


def test_centerclip_kmedoids_equals_the_analytic_count(counts):
    c = counts["centerclip"]
    assert c.transformer == reduced()  # the transformer part, exactly
    # the clustering part: the distance matrices, and one update product per segment and iteration,
    # the iterations found by re-running k-medoids on the clustered tokens with fewer max_iter
    iterations = sum(_iterations(counts["tokens"][s : s + 1]) for s in range(S))
    assert iterations >= S
    assert c.by_op["aten.baddbmm_"] == DISTANCES
    assert c.by_op["aten.bmm"] == iterations * UPDATE
    assert c.clustering == DISTANCES + iterations * UPDATE
    assert 0.6 < c.total / meanp() < 0.7  # 8/12 of the block work, the embedding and the clustering


def test_spectral_counts_the_eigensolver(counts):
    c = counts["spectral"]
    assert c.transformer == reduced()
    eigh = S * 9 * N**3  # one [N, N] Laplacian per segment, 9·n³ (flops.py's convention)
    assert c.by_op["aten._linalg_eigh"] == eigh
    # distances of the tokens (width W) and of the spectral rows (width K) for the k-medoids on them
    assert c.by_op["aten.baddbmm_"] == S * 2 * N * N * (W + K)
    updates, rest = divmod(c.by_op["aten.bmm"], UPDATE)
    assert rest == 0 and updates >= S
    assert c.clustering == eigh + S * 2 * N * N * (W + K) + updates * UPDATE


# ------------------------------------------------------------------ the formulas torch does not have


def test_extra_formulas_count_what_torch_misses():
    """torch 2.13 counts none of these on the CPU; dropping one of flops.EXTRA_FORMULAS fails here."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 10, 8, generator=g)
    a = torch.randn(3, 6, 6, generator=g)
    a = a + a.mT
    q = torch.randn(2, 3, 5, 4, generator=g)
    ops = {
        "cdist": (lambda: torch.cdist(x, x, p=1.0), 3 * 2 * 10 * 10 * 8),
        "eigh": (lambda: torch.linalg.eigh(a), 3 * 9 * 6**3),
        # eigenvalues only (eigvalsh under a dispatch mode asks for the vectors too, so call the op)
        "eigh values": (lambda: torch.ops.aten._linalg_eigh(a, "L", False), 3 * 4 * 6**3 // 3),
        "sdpa": (lambda: F.scaled_dot_product_attention(q, q, q), 2 * (2 * 2 * 3 * 5 * 5 * 4)),  # q·k and ·v
        "baddbmm_": (lambda: torch.zeros(2, 10, 10).baddbmm_(x, x.mT), 2 * 2 * 10 * 8 * 10),
    }
    for name, (fn, expected) in ops.items():
        with torch.no_grad(), FlopCounterMode(display=False) as plain:
            fn()
        assert plain.get_total_flops() == 0, name  # else torch counts it now: drop our formula
        assert count_flops(fn).total == expected, name


def test_clustering_share_is_what_runs_in_the_clustering_module():
    x = torch.randn(3, 20, 16, generator=torch.Generator().manual_seed(0))
    for fn in (lambda: kmedoids(x, 4), lambda: kmedoids(x, 4, p=1.0), lambda: spectral(x, 4)):
        c = count_flops(fn)
        assert c.total > 0 and c.clustering == c.total and c.transformer == 0
    c = count_flops(lambda: x @ x.mT)
    assert c.clustering == 0 and c.total == 3 * 2 * 20 * 16 * 20


def test_gflops_per_video_takes_any_of_the_models(clip):
    red = TokenReduction("centerclip", (ClusterStage(2, 2, 8),))
    expected = video_encoder_flops(clip.visual, red, 4).gflops
    clip.train()
    assert gflops_per_video(RetrievalModel(clip, red), frames=4) == expected
    assert gflops_per_video(clip, red, 4) == gflops_per_video(clip.visual, red, 4) == expected
    assert clip.visual.training  # counted in eval mode, the model's mode restored
    clip.eval()
    with pytest.raises(ValueError, match="TokenReduction"):
        gflops_per_video(clip)
