import numpy as np
import pytest
import torch

from centerclip.metrics import ranks_of_truth, retrieval_metrics


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
