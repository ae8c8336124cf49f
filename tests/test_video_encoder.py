"""Video encoder equivalences and CenterCLIP's token selection."""

import dataclasses

import pytest
import torch

from centerclip.model.clip import CLIP
from centerclip.model.clustering import kmedoids
from centerclip.model.retrieval import RetrievalModel
from centerclip.model.video_encoder import ClusterStage, TokenReduction, encode_segments, reduce_tokens
from tests.model_inputs import TINY, encode, video_batch

def meanp_by_hand(clip, video, mask):
    """CLIP4Clip meanP written out: per-frame CLIP image features, normalise, masked mean, normalise."""
    b, t = mask.shape
    f = clip.encode_image(video.flatten(0, 1)).view(b, t, -1)
    f = f / f.norm(dim=-1, keepdim=True)
    m = mask.float().unsqueeze(-1)
    v = (f * m).sum(1) / m.sum(1)
    return v / v.norm(dim=-1, keepdim=True)


def test_meanp_is_clip4clip(clip):
    video, mask = video_batch()
    torch.testing.assert_close(encode(clip, TokenReduction("meanP"), video, mask), meanp_by_hand(clip, video, mask))


def test_one_frame_segments_keeping_all_tokens_equal_baseline(clip):
    video, mask = video_batch()
    n_patches = clip.visual.grid ** 2
    for block in (0, 2):
        red = TokenReduction("centerclip", (ClusterStage(block=block, segments=4, clusters=n_patches),))
        torch.testing.assert_close(encode(clip, red, video, mask), meanp_by_hand(clip, video, mask))


def test_kept_tokens_are_medoids_in_ascending_order_and_cls_is_mean():
    torch.manual_seed(0)
    b, g, n, w = 2, 4, 16, 8
    x = torch.randn(b * g, 1 + n, w)
    seg_mask = torch.tensor([[True] * 4, [True, True, True, False]])
    stage = ClusterStage(block=0, segments=2, clusters=5)
    out, new_mask = reduce_tokens(x, seg_mask, stage, "centerclip", training=False)
    assert out.shape == (b * 2, 1 + 5, w)
    assert new_mask.tolist() == [[True, True], [True, True]]  # a segment with a real frame counts
    _, original = reduce_tokens(x, seg_mask, stage, "centerclip", training=False, segment_valid="last")
    assert original.tolist() == [[True, True], [True, False]]  # the original: only when its last frame is real
    segs = x.view(b, 2, 2, 1 + n, w)
    torch.testing.assert_close(out[:, 0], segs[:, :, :, 0].mean(2).reshape(-1, w))
    tokens = segs[:, :, :, 1:].reshape(b * 2, 2 * n, w)  # frame-major, raster order
    medoids = kmedoids(tokens, 5).medoids
    assert (medoids.diff(dim=1) > 0).all()
    torch.testing.assert_close(out[:, 1:], tokens.gather(1, medoids.unsqueeze(-1).expand(-1, -1, w)))


def test_one_segment_on_a_short_video_is_finite(clip):
    video, mask = video_batch(t=4)
    mask[0, 1:] = False  # one real frame, three padded
    red = TokenReduction("centerclip", (ClusterStage(1, 1, 8),))
    assert torch.isfinite(encode(clip, red, video, mask)).all()


def test_two_stages_and_token_counts(clip):
    video, mask = video_batch(t=4)
    red = TokenReduction("centerclip", (ClusterStage(1, 4, 8), ClusterStage(3, 2, 6)))
    feats, seg_mask = encode_segments(clip.visual, video, mask, red)
    assert feats.shape == (2, 2, TINY.embed_dim) and seg_mask.shape == (2, 2)


@pytest.mark.parametrize("method,stages", [
    ("pooling", (ClusterStage(2, 2, 16),)),
    ("sparse", (ClusterStage(2, 2, 8),)),
    ("token_shift", ()),
    ("temporal_shift", ()),
    ("centerclip", (ClusterStage(2, 2, 8, algorithm="spectral"),)),
    ("centerclip", (ClusterStage(2, 2, 8, l2_normalize=True),)),
])
def test_every_method_runs_and_is_normalised(clip, method, stages):
    video, mask = video_batch()
    v = encode(clip, TokenReduction(method, stages), video, mask, training=True)
    assert v.shape == (2, TINY.embed_dim)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(2))


def test_shifts_change_the_output_and_sparse_eval_is_deterministic(clip):
    video, mask = video_batch()
    base = encode(clip, TokenReduction("meanP"), video, mask)
    assert not torch.allclose(encode(clip, TokenReduction("temporal_shift"), video, mask), base)
    sparse = TokenReduction("sparse", (ClusterStage(2, 2, 8),))
    torch.testing.assert_close(encode(clip, sparse, video, mask), encode(clip, sparse, video, mask))


def test_gradients_reach_clip_through_kept_tokens(clip):
    model = RetrievalModel(CLIP(TINY), TokenReduction("centerclip", (ClusterStage(2, 2, 8),)))
    video, mask = video_batch()
    tokens = torch.randint(1, 1000, (2, 16))
    tokens[:, -1] = 49407
    logits = model(video, mask, tokens)
    logits.diag().sum().backward()
    assert model.clip.visual.conv1.weight.grad.abs().sum() > 0  # before the clustering stage
    assert model.clip.visual.transformer.resblocks[3].mlp.c_fc.weight.grad.abs().sum() > 0  # after it


def test_bf16_autocast_runs_with_fp32_clustering(clip):
    video, mask = video_batch()
    red = TokenReduction("centerclip", (ClusterStage(2, 2, 8),))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = encode(clip, red, video, mask)
    ref = encode(clip, red, video, mask)
    assert torch.nn.functional.cosine_similarity(v.float(), ref).min() > 0.98


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="segments"):
        reduce_tokens(torch.zeros(4, 5, 8), torch.ones(1, 4, dtype=torch.bool), ClusterStage(0, 3, 2),
                      "centerclip", False)
    with pytest.raises(ValueError, match="unknown method"):
        TokenReduction("tome")
    with pytest.raises(ValueError, match="needs at least one stage"):
        TokenReduction("centerclip")


def centerclip_by_hand(visual, video, mask, a, segments, clusters):
    """CenterCLIP (B_a - segments, clusters) written out: ``embed`` -> the first ``a`` blocks ->
    per segment, CLS = mean of its frames' CLS tokens and the k-medoids medoids of its frames' patch
    tokens (frame-major) -> the remaining blocks -> head -> normalise, masked mean over segments
    holding a real frame, normalise."""
    b, t = mask.shape
    per = t // segments
    blocks = list(visual.transformer.resblocks)
    x = visual.embed(video.flatten(0, 1))
    for block in blocks[:a]:
        x = block(x)
    length, w = x.shape[1:]
    rows = []
    for v in range(b):
        for s in range(segments):
            frames = x[(v * t + s * per):(v * t + (s + 1) * per)]  # [per, 1 + P, W]
            cls = frames[:, 0].mean(dim=0, keepdim=True)
            patches = frames[:, 1:].reshape(per * (length - 1), w)
            keep = kmedoids(patches.unsqueeze(0), clusters).medoids[0]
            rows.append(torch.cat([cls, patches[keep]], dim=0))
    x = torch.stack(rows)  # [B*S, 1 + K, W]
    for block in blocks[a:]:
        x = block(x)
    f = visual.head(x[:, 0]).view(b, segments, -1)
    f = f / f.norm(dim=-1, keepdim=True)
    m = mask.view(b, segments, per).any(dim=-1).float().unsqueeze(-1)
    v = (f * m).sum(1) / m.sum(1)
    return v / v.norm(dim=-1, keepdim=True)


@pytest.fixture(scope="module")
def clip6():
    torch.manual_seed(0)
    return CLIP(dataclasses.replace(TINY, vision_layers=6)).eval()


@pytest.mark.parametrize("a", [2, 4])
def test_stage_block_a_clusters_after_the_a_th_block(clip6, a):
    """"B_a" (paper §3, Fig. 3: B_6 - 4, 49 = clustering after block 6 of 12) is ClusterStage(block=a):
    the encoder equals the hand-built pipeline that clusters after exactly ``a`` blocks, and not the
    one that clusters a block later."""
    video, mask = video_batch(b=2, t=4)
    with torch.no_grad():
        got = encode(clip6, TokenReduction("centerclip", (ClusterStage(a, 2, 8),)), video, mask)
        ref = centerclip_by_hand(clip6.visual, video, mask, a, segments=2, clusters=8)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
        late_ref = centerclip_by_hand(clip6.visual, video, mask, a + 1, segments=2, clusters=8)
        late = encode(clip6, TokenReduction("centerclip", (ClusterStage(a + 1, 2, 8),)), video, mask)
    torch.testing.assert_close(late, late_ref, rtol=1e-5, atol=1e-6)
    assert (got - late).abs().max() > 1e-3  # one block later is a different model: the test has teeth
    assert (got - late_ref).abs().max() > 1e-3


def test_a_trace_reports_which_patches_each_stage_keeps_without_changing_the_forward():
    """ToMe-style source tracking: (B2 - 4, 5) then (B3 - 2, 3) on 12 frames of 16 patches. The second
    stage's sources are patches of the video (frame * 16 + patch), found through the first stage."""
    from centerclip.model.clip import CLIP, CLIPConfig

    torch.manual_seed(0)
    visual = CLIP(CLIPConfig(32, 64, 4, 64, 16, 77, 49408, 64, 1, 1)).eval().visual
    video = torch.randn(2, 12, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 12, dtype=torch.bool)
    reduction = TokenReduction("centerclip", (ClusterStage(2, 4, 5), ClusterStage(3, 2, 3)))
    trace = []
    with torch.no_grad():
        traced, _ = encode_segments(visual, video, mask, reduction, trace=trace)
        plain, _ = encode_segments(visual, video, mask, reduction)
    assert torch.equal(traced, plain)
    (first, kept1), (second, kept2) = trace
    assert (first.block, kept1.shape, second.block, kept2.shape) == (2, (2, 4, 5), 3, (2, 2, 3))
    # stage 1: segment s of 3 frames keeps patches of its own frames 3s..3s+2
    seg_of = kept1 // 16 // 3
    assert torch.equal(seg_of, torch.arange(4).view(1, 4, 1).expand(2, 4, 5))
    # stage 2: every kept token is one stage 1 kept, in the merged segments (0-1, 2-3)
    for b in range(2):
        for s in range(2):
            assert set(kept2[b, s].tolist()) <= set(kept1[b, 2 * s:2 * s + 2].flatten().tolist())
    # pooled tokens are means over frames: that stage and every later one report no patches
    trace = []
    with torch.no_grad():
        encode_segments(visual, video, mask, TokenReduction("pooling", (ClusterStage(2, 4, 5), ClusterStage(3, 2, 3))),
                        trace=trace)
    assert [(stage.block, kept) for stage, kept in trace] == [(2, None), (3, None)]


def test_a_distance_p_1_stage_keeps_the_l1_medoids_not_the_euclidean_ones():
    """Two of the authors' released MSR-VTT checkpoints cluster with the L1 distance (``distance_p=1``).
    One segment of two frames whose patch tokens form two far-apart groups (frame 0: around the
    origin, frame 1: around 100·e0): k-medoids with k = 2 keeps one medoid per group, and each is the
    group's 1-medoid, the token with the smallest sum of distances to its group, here computed by
    brute force with ``torch.cdist(p=1)``. The groups are chosen so that the L1 and the L2 1-medoids
    differ in both: a stage that clustered with the Euclidean distance keeps other tokens."""
    n, w = 8, 4
    g = torch.Generator().manual_seed(38)
    scale = torch.tensor([3.0, 1.0, 0.3, 0.1])  # anisotropic, so that L1 and L2 disagree
    far = torch.tensor([100.0, 0.0, 0.0, 0.0])
    groups = [torch.randn(n, w, generator=g) * scale, torch.randn(n, w, generator=g) * scale + far]
    x = torch.cat([torch.zeros(2, 1, w), torch.stack(groups)], dim=1)  # [frames, CLS + patches, W]

    def one_medoid(group, p):
        return int(torch.cdist(group[None].double(), group[None].double(), p=p)[0].sum(dim=1).argmin())

    l1 = [one_medoid(groups[0], 1), n + one_medoid(groups[1], 1)]  # indices into the segment's 2n tokens
    l2 = [one_medoid(groups[0], 2), n + one_medoid(groups[1], 2)]
    assert l1[0] != l2[0] and l1[1] != l2[1]  # the data tell the two distances apart
    seg_mask = torch.ones(1, 2, dtype=torch.bool)
    out, _ = reduce_tokens(x, seg_mask, ClusterStage(0, 1, 2, distance_p=1.0), "centerclip", training=False)
    tokens = x[:, 1:].reshape(2 * n, w)
    assert torch.equal(out[0, 1:], tokens[l1])
    out2, _ = reduce_tokens(x, seg_mask, ClusterStage(0, 1, 2), "centerclip", training=False)
    assert torch.equal(out2[0, 1:], tokens[l2])  # the default stage is the paper's Euclidean one
