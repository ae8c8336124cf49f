"""Table 5's baselines compute what the original code computes: sparse sampling's index rule,
temporal shift (TSM, patch tokens) and token shift (CLS token), with hand-checkable examples."""

import pytest
import torch

from centerclip.training.step import micro_seed
from centerclip.model.video_encoder import (ClusterStage, TokenReduction, encode_segments, reduce_tokens,
                                      sparse_indices, temporal_shift)
from tests.model_inputs import video_batch


# ---------------------------------------------------------------------------------------------
# sparse sampling


def test_sparse_eval_takes_the_centre_of_each_interval():
    # 4 frames x 49 patches, K = 49: tick 4.0 -> 2, 6, 10, ...
    assert sparse_indices(196, 49, training=False).tolist() == [int(2.0 + 4.0 * i) for i in range(49)]
    assert sparse_indices(196, 49, training=False).tolist()[:4] == [2, 6, 10, 14]
    # 3 frames x 49, K = 49: tick 3.0 -> 1, 4, 7, ...
    assert sparse_indices(147, 49, training=False).tolist() == [1 + 3 * i for i in range(49)]
    # a non-integer tick, 100 / 49 = 2.0408...: written out, and recomputed with Python floats
    expected = [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43, 45, 47,
                50, 52, 54, 56, 58, 60, 62, 64, 66, 68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94,
                96, 98]
    tick = 100 / 49
    assert [int(tick / 2 + tick * i) for i in range(49)] == expected
    assert sparse_indices(100, 49, training=False).tolist() == expected
    assert sparse_indices(10, 10, training=False).tolist() == list(range(10))


def test_sparse_training_draws_one_offset_per_interval():
    torch.manual_seed(3)
    for total, k in ((196, 49), (100, 49), (20, 6), (7, 7)):
        step = total // k
        for _ in range(20):
            idx = sparse_indices(total, k, training=True).tolist()
            assert len(idx) == k
            assert all(i * step <= j < (i + 1) * step for i, j in enumerate(idx)), (total, k, idx)
    # every offset of an interval is reached
    seen = {sparse_indices(20, 6, training=True)[0].item() for _ in range(200)}
    assert seen == {0, 1, 2}


def test_sparse_fallback_with_fewer_tokens_than_k_is_sorted_without_repeats():
    torch.manual_seed(0)
    for total, k in ((5, 8), (1, 3), (48, 49)):
        idx = sparse_indices(total, k, training=True).tolist()
        assert idx == sorted(idx) and len(set(idx)) == len(idx) and all(0 <= j < total for j in idx)
    # the encoder clamps K to the segment's tokens: every token is kept once, in order, in both modes
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).view(2 * 4, 3, 1).expand(-1, -1, 2).contiguous()
    seg_mask = torch.ones(2, 4, dtype=torch.bool)
    for training in (False, True):
        out, _ = reduce_tokens(x, seg_mask, ClusterStage(0, 2, 9), "sparse", training)
        assert out.shape == (4, 1 + 4, 2)
        torch.testing.assert_close(out[:, 1:], x.view(4, 2, 3, 2)[:, :, 1:].reshape(4, 4, 2))


def _kept_positions(seed: int, training: bool, b: int = 3) -> torch.Tensor:
    """reduce_tokens on 3 videos x 4 frames x 10 patches, 2 segments, K = 6, with every patch token
    holding its position in its segment (frame-major): returns the kept positions [B, S, K]."""
    g, s, n, w = 4, 2, 10, 4
    per = g // s
    pos = torch.arange(per * n, dtype=torch.float32).view(per, n)  # position within the segment
    patches = pos.repeat(b * s, 1).view(b * g, n)  # frame f of a segment holds f*n .. f*n+n-1
    x = torch.cat([torch.full((b * g, 1), -1.0), patches], dim=1).unsqueeze(-1).expand(-1, -1, w).contiguous()
    torch.manual_seed(seed)
    out, _ = reduce_tokens(x, torch.ones(b, g, dtype=torch.bool), ClusterStage(0, s, 6), "sparse", training)
    assert (out[..., 0] == out[..., 1]).all() and (out[:, 0, 0] == -1).all()
    return out[:, 1:, 0].long().view(b, s, 6)


def test_sparse_training_draw_is_shared_by_the_batch_and_follows_the_seed():
    kept = _kept_positions(micro_seed(42, 0, 0), training=True)
    step = 20 // 6  # 2 frames x 10 patches per segment
    for seg in range(2):
        for i in range(6):
            assert (i * step <= kept[:, seg, i]).all() and (kept[:, seg, i] < (i + 1) * step).all()
    # one draw per segment, the same for every video of the batch
    assert (kept == kept[:1]).all()
    # reproducible from the training loop's seed; another step or micro-batch draws again
    torch.testing.assert_close(_kept_positions(micro_seed(42, 0, 0), training=True), kept)
    others = [_kept_positions(micro_seed(42, st, mi), training=True) for st, mi in ((1, 0), (0, 1), (2, 0))]
    assert all(not torch.equal(o, kept) for o in others)
    assert not torch.equal(_kept_positions(micro_seed(7, 0, 0), training=True), kept)
    # the segments draw independently
    draws = [_kept_positions(seed, training=True) for seed in range(5)]
    assert any(not torch.equal(d[0, 0], d[0, 1]) for d in draws)


def test_sparse_evaluation_keeps_the_interval_centres_of_every_segment():
    tick = 20 / 6
    centres = [int(tick / 2 + tick * i) for i in range(6)]  # 1, 5, 8, 11, 15, 18
    assert centres == [1, 5, 8, 11, 15, 18]
    for seed in (0, 1):
        assert (_kept_positions(seed, training=False) == torch.tensor(centres)).all()


# ---------------------------------------------------------------------------------------------
# shifts: 2 videos x 3 frames, tokens CLS + 2 patches, 8 channels -> fold = 1


def _shift_input() -> torch.Tensor:
    """value = 1000*video + 100*frame + 10*token + channel (frames 1..3)."""
    v, f, j, c = torch.meshgrid(torch.arange(2), torch.arange(1, 4), torch.arange(3), torch.arange(8),
                                indexing="ij")
    return (1000 * v + 100 * f + 10 * j + c).float().reshape(6, 3, 8)


def _expected(shifted_tokens: tuple[int, ...]) -> torch.Tensor:
    """Written out per element: channel 0 of frame t takes frame t+1's (last frame 0), channel 1
    takes frame t-1's (first frame 0), channels 2..7 and the other tokens keep their value."""
    out = torch.zeros(2, 3, 3, 8)
    for v in range(2):
        for f in range(1, 4):
            for j in range(3):
                for c in range(8):
                    val = 1000 * v + 100 * f + 10 * j + c
                    if j in shifted_tokens and c == 0:
                        val = 0 if f == 3 else val + 100
                    elif j in shifted_tokens and c == 1:
                        val = 0 if f == 1 else val - 100
                    out[v, f - 1, j, c] = val
    return out.view(6, 3, 8)


def test_token_shift_moves_the_cls_token_only():
    x = _shift_input()
    out = temporal_shift(x, 3, slice(0, 1))
    torch.testing.assert_close(out, _expected((0,)), rtol=0, atol=0)
    # the CLS token of video 0, frames 1..3, read off
    assert out[:3, 0].tolist() == [[200, 0, 102, 103, 104, 105, 106, 107],
                                   [300, 101, 202, 203, 204, 205, 206, 207],
                                   [0, 201, 302, 303, 304, 305, 306, 307]]
    torch.testing.assert_close(x, _shift_input())  # the input is left as it was


def test_temporal_shift_moves_the_patch_tokens_only():
    x = _shift_input()
    out = temporal_shift(x, 3, slice(1, None))
    torch.testing.assert_close(out, _expected((1, 2)), rtol=0, atol=0)
    assert out[3:, 2].tolist() == [[1220, 0, 1122, 1123, 1124, 1125, 1126, 1127],
                                   [1320, 1121, 1222, 1223, 1224, 1225, 1226, 1227],
                                   [0, 1221, 1322, 1323, 1324, 1325, 1326, 1327]]


# ---------------------------------------------------------------------------------------------
# block structure against a hand-built encoder


def _shift_by_hand(x: torch.Tensor, frames: int, tokens: list[int]) -> torch.Tensor:
    """Independent shift: fold = width // 8; loops over frames."""
    w = x.shape[-1]
    fold = w // 8
    v = x.view(-1, frames, *x.shape[1:])
    out = v.clone()
    for t in range(frames):
        for j in tokens:
            out[:, t, j, :fold] = v[:, t + 1, j, :fold] if t + 1 < frames else 0
            out[:, t, j, fold:2 * fold] = v[:, t - 1, j, fold:2 * fold] if t > 0 else 0
    return out.view_as(x)


def _reference_features(clip, video, method):
    vis = clip.visual
    b, t = video.shape[:2]
    x = vis.embed(video.flatten(0, 1))
    cls, patches = [0], list(range(1, x.shape[1]))
    for blk in vis.transformer.resblocks:
        if method == "temporal_shift":
            x = _shift_by_hand(x, t, patches)
            x = x + blk.attn(blk.ln_1(x))
            x = x + blk.mlp(blk.ln_2(x))
        else:
            x = _shift_by_hand(x, t, cls)
            x = x + blk.attn(blk.ln_1(x))
            x = _shift_by_hand(x, t, cls)
            x = x + blk.mlp(blk.ln_2(x))
    return vis.head(x[:, 0]).view(b, t, -1)


@pytest.mark.parametrize("method", ["temporal_shift", "token_shift"])
def test_shift_encoders_equal_a_hand_built_reference(clip, method):
    video, mask = video_batch()
    with torch.no_grad():
        feats, seg_mask = encode_segments(clip.visual, video, mask, TokenReduction(method))
        ref = _reference_features(clip, video, method)
    assert torch.equal(seg_mask, mask)
    torch.testing.assert_close(feats, ref, rtol=0, atol=0)
    # and the shift does matter: without it the features are meanP's
    with torch.no_grad():
        plain, _ = encode_segments(clip.visual, video, mask, TokenReduction("meanP"))
    assert not torch.allclose(feats, plain)
