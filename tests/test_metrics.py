import numpy as np
import pytest
import torch

from centerclip.training.metrics import ranks_of_truth, retrieval_metrics


def test_perfect_diagonal():
    sim = torch.eye(5) + 0.01 * torch.rand(5, 5)
    m = retrieval_metrics(sim)
    for d in ("t2v", "v2t"):
        assert m[d]["R1"] == 100.0 and m[d]["MdR"] == 1.0 and m[d]["MnR"] == 1.0


def test_hand_computed_ranks_and_transpose():
    # text i's truth is video i; rows = texts
    sim = torch.tensor([[0.9, 0.1, 0.0],
                        [0.8, 0.5, 0.1],   # truth 0.5 beaten by 0.8 -> rank 2
                        [0.7, 0.6, 0.2]])  # truth 0.2 beaten by two -> rank 3
    m = retrieval_metrics(sim)
    assert m["t2v"]["R1"] == pytest.approx(100 / 3)
    assert m["t2v"]["R5"] == 100.0
    assert m["t2v"]["MdR"] == 2.0 and m["t2v"]["MnR"] == pytest.approx(2.0)
    # video->text uses columns: video 0 ranks text 0 (0.9) first; video 1: 0.5 vs 0.6 -> rank 2;
    # video 2: 0.2 best in its column -> rank 1
    assert m["v2t"]["MnR"] == pytest.approx(4 / 3)


def test_ties_are_pessimistic():
    sim = torch.ones(4, 4)  # everything tied: the truth ranks last
    m = retrieval_metrics(sim)
    assert m["t2v"]["R1"] == 0.0 and m["t2v"]["MdR"] == 4.0


def test_even_count_median_is_mean_of_middle_values():
    ranks = ranks_of_truth(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]))
    assert ranks.tolist() == [1, 2]
    sim = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert retrieval_metrics(sim)["t2v"]["MdR"] == 1.5


def test_multi_caption_protocol():
    # 3 videos, captions 0,1 -> video 0, caption 2 -> video 1, captions 3,4 -> video 2
    text_video = torch.tensor([0, 0, 1, 2, 2])
    sim = torch.tensor([[0.9, 0.1, 0.2],
                        [0.1, 0.3, 0.2],   # rank 2 for video 0
                        [0.0, 0.8, 0.1],
                        [0.1, 0.2, 0.7],
                        [0.3, 0.0, 0.2]])  # rank 2 for video 2
    m = retrieval_metrics(sim, text_video)
    assert m["t2v"]["R1"] == pytest.approx(60.0)
    # video->text: each video vs caption groups by the group's best caption: all rank 1
    assert m["v2t"]["R1"] == 100.0


def test_against_numpy_oracle_random():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(30, 30)).astype(np.float32)
    m = retrieval_metrics(torch.from_numpy(s))
    ranks = np.array([1 + np.sum(np.delete(s[i], i) >= s[i, i]) for i in range(30)])
    assert m["t2v"]["R10"] == pytest.approx(100 * np.mean(ranks <= 10))
    assert m["t2v"]["MnR"] == pytest.approx(ranks.mean())


def test_bad_shapes_are_explained():
    with pytest.raises(ValueError, match="text_video"):
        retrieval_metrics(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="no text"):
        retrieval_metrics(torch.zeros(2, 3), torch.tensor([0, 0]))


# ---------------------------------------------------------------------------------------------
# All five metrics against an independent oracle (plain Python loops), on data built so that the
# boundaries matter: truths at exactly rank 5 and 6 (R@5 counts one, not the other), at 10 and 11
# (R@10), a median rank that differs from the mean rank, and pessimistically counted ties.


def _oracle_rank(scores: list[float], truth: int) -> int:
    """1 + the number of other candidates scoring >= the truth (ties count against it)."""
    rank = 1
    for j, s in enumerate(scores):
        if j != truth and s >= scores[truth]:
            rank += 1
    return rank


def _oracle_median(values: list[int]) -> float:
    v = sorted(values)
    mid = len(v) // 2
    return float(v[mid]) if len(v) % 2 else (v[mid - 1] + v[mid]) / 2.0


def _oracle_summary(ranks: list[int]) -> dict[str, float]:
    n = len(ranks)
    out = {}
    for k in (1, 5, 10):
        hits = 0
        for r in ranks:
            if r <= k:
                hits += 1
        out[f"R{k}"] = 100.0 * hits / n
    out["MdR"] = _oracle_median(ranks)
    out["MnR"] = sum(ranks) / n
    return out


def _oracle(sim: list[list[float]], text_video: list[int]) -> tuple[list[int], list[int]]:
    """t2v ranks (one per text) and v2t ranks (one per video; caption group scored by its best
    caption)."""
    n_video = len(sim[0])
    t2v = [_oracle_rank(sim[i], text_video[i]) for i in range(len(sim))]
    v2t = []
    for v in range(n_video):
        group_best = []
        for g in range(n_video):
            best = None
            for i, tv in enumerate(text_video):
                if tv == g and (best is None or sim[i][v] > best):
                    best = sim[i][v]
            group_best.append(best)
        v2t.append(_oracle_rank(group_best, v))
    return t2v, v2t


# Designed ranks of the 12 x 12 matrix below. Rows (t2v) and columns (v2t) are set independently:
# the truth of text/video i scores i, an upper-triangle entry (i < j) that counts for row i scores
# i (a tie) or i + 0.5 (below column j's truth j), a lower-triangle entry (i > j) that counts for
# column j scores j (a tie) or j + 0.5 (below row i's truth i); every other entry is -1.
ROW_RANKS = [11, 10, 6, 5, 1, 2, 3, 1, 4, 1, 2, 1]  # median 2.5, mean 47/12
COL_RANKS = [6, 11, 10, 1, 5, 2, 1, 3, 2, 1, 1, 1]  # median 2.0, mean 44/12


def _designed_square() -> list[list[float]]:
    n = len(ROW_RANKS)
    sim = [[-1.0] * n for _ in range(n)]
    for i in range(n):
        sim[i][i] = float(i)
        for k, j in enumerate(range(i + 1, i + ROW_RANKS[i])):
            sim[i][j] = i + (0.0 if k % 2 == 0 else 0.5)  # ties and strict wins alternate
    for j in range(n):
        for k, i in enumerate(range(j + 1, j + COL_RANKS[j])):
            sim[i][j] = j + (0.5 if k % 2 == 0 else 0.0)
    return sim


def _assert_metrics_equal(got: dict[str, float], ranks: list[int]) -> None:
    want = _oracle_summary(ranks)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_all_five_metrics_against_a_loop_oracle_square():
    sim = _designed_square()
    t2v, v2t = _oracle(sim, list(range(12)))
    assert t2v == ROW_RANKS and v2t == COL_RANKS  # the construction did what it says
    for ranks in (t2v, v2t):
        assert {5, 6, 10, 11} <= set(ranks)
        assert _oracle_median(ranks) != sum(ranks) / len(ranks)
    m = retrieval_metrics(torch.tensor(sim))
    _assert_metrics_equal(m["t2v"], t2v)
    _assert_metrics_equal(m["v2t"], v2t)
    # the boundaries, written out: rank 5 counts for R@5 and rank 6 does not; likewise 10 / 11
    assert m["t2v"]["R5"] == pytest.approx(100 * 9 / 12)  # 1,1,1,1,2,2,3,4,5 (not 6, 10, 11)
    assert m["t2v"]["R10"] == pytest.approx(100 * 11 / 12)
    assert m["t2v"]["MdR"] == 2.5 and m["t2v"]["MnR"] == pytest.approx(47 / 12)
    assert m["v2t"]["R5"] == pytest.approx(100 * 9 / 12)  # all but the 6, 10 and 11
    assert m["v2t"]["R10"] == pytest.approx(100 * 11 / 12)
    assert m["v2t"]["MdR"] == 2.0 and m["v2t"]["MnR"] == pytest.approx(44 / 12)
    # ranks_of_truth itself, per query
    assert ranks_of_truth(torch.tensor(sim), torch.arange(12)).tolist() == ROW_RANKS


def test_all_five_metrics_against_a_loop_oracle_multi_caption():
    """MSVD-like: 12 videos, 15 captions in shuffled order; three videos get a second caption."""
    square = _designed_square()
    captions = [(g, square[g]) for g in range(12)]
    extra0 = [-1.0] * 12
    extra0[0], extra0[7] = 0.0, 7.0  # video 0's 2nd caption: ranks 2; lifts group 0 in video 7's column
    extra5 = [-1.0] * 12
    extra5[5] = 20.0  # video 5's 2nd caption: ranks 1; makes group 5 video 5's best text
    extra9 = list(square[9])
    extra9[9] = -1.0  # video 9's 2nd caption: ties with every -1, ranks last (12)
    captions += [(0, extra0), (5, extra5), (9, extra9)]
    order = [13, 4, 0, 9, 14, 2, 7, 11, 1, 12, 5, 10, 3, 8, 6]
    text_video = [captions[k][0] for k in order]
    sim = [captions[k][1] for k in order]

    t2v, v2t = _oracle(sim, text_video)
    assert t2v == [(ROW_RANKS + [2, 1, 12])[k] for k in order]
    assert v2t == [6, 11, 10, 1, 5, 1, 1, 4, 2, 1, 1, 1]  # groups by their best caption
    assert v2t != COL_RANKS  # ... which is not what the first captions alone give
    for ranks in (t2v, v2t):
        assert {5, 6, 10, 11} <= set(ranks)
        assert _oracle_median(ranks) != sum(ranks) / len(ranks)
    m = retrieval_metrics(torch.tensor(sim), torch.tensor(text_video))
    _assert_metrics_equal(m["t2v"], t2v)
    _assert_metrics_equal(m["v2t"], v2t)
    assert m["t2v"]["MdR"] == 2.0 and m["t2v"]["MnR"] == pytest.approx(62 / 15)
    assert m["t2v"]["R5"] == pytest.approx(100 * 11 / 15) and m["t2v"]["R10"] == pytest.approx(100 * 13 / 15)
    assert m["v2t"]["MdR"] == 1.5 and m["v2t"]["MnR"] == pytest.approx(44 / 12)
    assert m["v2t"]["R5"] == pytest.approx(100 * 9 / 12) and m["v2t"]["R10"] == pytest.approx(100 * 11 / 12)
