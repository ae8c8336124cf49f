"""Frame sampling (``sample_frame_indices``): evaluation indices are the original code's, bit for bit.

The original picks T of a video's N frames at evaluation with ``int(tick / 2.0 + tick * i)``,
``tick = N / T`` in double precision. Evaluated in that order, a centre that is a whole number in
exact arithmetic can come out just below it and land one frame earlier than ``i * N / T + N / T / 2``
would (N = 16, T = 12: frame 9, not 10).
"""

from __future__ import annotations

import numpy as np
import pytest

from centerclip.data.datasets import sample_frame_indices


def original_eval_indices(n: int, t: int) -> list[int]:
    """The original's rule, in plain Python floats."""
    return [int(n / t / 2.0 + n / t * i) for i in range(t)]


def test_sixteen_frames_to_twelve_written_out():
    idx, mask = sample_frame_indices(16, 12, train=False)
    assert idx.tolist() == [0, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 15]
    assert idx.dtype == np.int64 and mask.dtype == bool and mask.all()


@pytest.mark.parametrize("t,lengths", [(12, range(13, 91)), (60, range(61, 601))])
def test_evaluation_indices_equal_the_original_rule(t, lengths):
    for n in lengths:
        idx, mask = sample_frame_indices(n, t, train=False)
        assert idx.tolist() == original_eval_indices(n, t), n
        assert idx.shape == (t,) and mask.all(), n
        assert (np.diff(idx) > 0).all(), n  # strictly ascending: N > T gives distinct frames
        assert idx[0] >= 0 and idx[-1] < n, n


def test_the_lengths_where_exact_centres_would_differ_are_covered():
    """The sweep above has teeth: at these lengths the naive ``i * N / T`` order gives other frames."""
    def naive(n, t):
        return (n / t / 2 + np.arange(t) * n / t).astype(np.int64).tolist()

    differ_12 = [n for n in range(13, 91) if naive(n, 12) != original_eval_indices(n, 12)]
    differ_60 = [n for n in range(61, 601) if naive(n, 60) != original_eval_indices(n, 60)]
    assert differ_12 == [16, 32, 64, 88]
    assert len(differ_60) == 20


@pytest.mark.parametrize("n", [1, 5, 11])
def test_short_videos_repeat_the_last_frame_masked(n):
    for train in (False, True):
        idx, mask = sample_frame_indices(n, 12, train=train, rng=np.random.default_rng(0))
        assert idx.tolist() == list(range(n)) + [n - 1] * (12 - n)
        assert mask.tolist() == [True] * n + [False] * (12 - n)


def test_exactly_t_frames_takes_every_frame():
    for train in (False, True):
        idx, mask = sample_frame_indices(12, 12, train=train, rng=np.random.default_rng(0))
        assert idx.tolist() == list(range(12)) and mask.all()
    assert original_eval_indices(12, 12) == list(range(12))  # the original's rule agrees here


@pytest.mark.parametrize("n", [13, 16, 36, 89, 200])
def test_training_draws_one_frame_per_segment_unchanged(n):
    seg = n // 12
    idx, mask = sample_frame_indices(n, 12, train=True, rng=np.random.default_rng(7))
    expected = np.arange(12) * seg + np.random.default_rng(7).integers(0, seg, size=12)
    assert idx.tolist() == expected.tolist() and mask.all()
