"""The pure parts of centerclip-search: exact top-k with ties, the incremental update plan, and the
video paths of the results page. (The commands end to end: tests/test_search.py.)"""

import numpy as np
import pytest

pytest.importorskip("h5py")  # centerclip.search.index needs the workflow extra

from centerclip.search.index import Entry, Failure, Index, plan_update  # noqa: E402
from centerclip.search.page import video_src  # noqa: E402
from centerclip.search.ranking import top_k  # noqa: E402
from centerclip.search.videos import VideoFile  # noqa: E402


def test_top_k_is_exact_and_keeps_column_order_on_ties():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, 0.5, 0.5, -1.0, 0.2, 0.3, 0.0, 0.5]], dtype=np.float32)
    # two 0.9s, then three of the four 0.5s in column order: the tie straddles the k-th place
    assert [i for i, _ in top_k(scores, 5)[0]] == [1, 3, 2, 4, 5]
    assert top_k(scores, 100)[0] == sorted(top_k(scores, 100)[0], key=lambda t: -t[1])
    assert len(top_k(scores, 100)[0]) == scores.shape[1]  # k > N: every video, once

    rng = np.random.default_rng(0)
    many = rng.integers(0, 20, size=(3, 500)).astype(np.float32)  # many ties, N >> k
    for k in (1, 7, 50):
        for row, got in zip(many, top_k(many, k)):
            want = np.argsort(-row, kind="stable")[:k]
            assert [i for i, _ in got] == want.tolist()
            assert [s for _, s in got] == row[want].tolist()
    with pytest.raises(ValueError):
        top_k(scores, 0)


def _entry(path, size, mtime):
    return Entry(path, size, mtime, 1.0, 4, np.ones(4, np.float32) / 2, b"jpeg")


def test_plan_update_sorts_videos_into_added_changed_deleted_kept():
    old = Index({}, [_entry("a.mp4", 10, 1), _entry("b.mp4", 20, 2), _entry("c.mp4", 30, 3), _entry("d/e.mkv", 5, 5)],
                [Failure("bad.mp4", "not a video", 7, 7), Failure("fixed.mp4", "truncated", 8, 8),
                 Failure("gone.mp4", "not a video", 9, 9)])
    found = [VideoFile("a.mp4", 10, 1),  # unchanged
             VideoFile("b.mp4", 21, 2),  # size differs
             VideoFile("c.mp4", 30, 4),  # mtime differs
             VideoFile("bad.mp4", 7, 7),  # unchanged failure: not retried
             VideoFile("fixed.mp4", 80, 8),  # a failure that changed: tried again
             VideoFile("new.mp4", 1, 1)]
    plan = plan_update(old, found)
    assert [e.path for e in plan.kept] == ["a.mp4"]
    assert plan.kept[0] is old.entries[0]  # its embedding kept as it was
    assert [f.path for f in plan.kept_failed] == ["bad.mp4"]
    assert [v.path for v in plan.changed] == ["b.mp4", "c.mp4", "fixed.mp4"]
    assert [v.path for v in plan.added] == ["new.mp4"]
    assert plan.deleted == ["d/e.mkv", "gone.mp4"]
    assert [v.path for v in plan.to_encode] == ["b.mp4", "c.mp4", "fixed.mp4", "new.mp4"]

    fresh = plan_update(None, found)  # no index yet: everything is new
    assert [v.path for v in fresh.added] == [v.path for v in found] and not (fresh.kept or fresh.deleted)


def test_video_src_is_relative_to_the_page_and_url_quoted(tmp_path):
    root = tmp_path / "videos"
    assert video_src(tmp_path / "out" / "page.html", root, "a/b c#1?.mp4") == "../videos/a/b%20c%231%3F.mp4"
    assert video_src(tmp_path / "page.html", root, "été/100%.avi") == "videos/%C3%A9t%C3%A9/100%25.avi"
    assert video_src(root / "deep" / "page.html", root, "x.mp4") == "../x.mp4"


def test_demo_recall_ranks_ties_as_the_evaluation_and_tells_ties_from_differences():
    import torch

    from centerclip.search.demo import compare_with_run
    from centerclip.training.metrics import retrieval_metrics

    scores = torch.tensor([[0.9, 0.1, 0.2], [0.5, 0.5, 0.1], [0.3, 0.2, 0.1]])  # query 1 ties with its truth
    truth = torch.tensor([0, 1, 2])
    t2v = retrieval_metrics(scores, truth)["t2v"]  # the evaluation's numbers: the tie ranked pessimistically
    same = compare_with_run(scores, truth, t2v, 3)
    assert same["equal"] and (same["t2v_R1"], same["t2v_R5"]) == (t2v["R1"], t2v["R5"])
    assert (t2v["R1"], t2v["R5"]) == (pytest.approx(100 / 3), 100.0)
    # the run's own scores put query 1's truth a hair above the other video (float noise): a near-tie explains it
    noisy = scores.clone()
    noisy[1, 1] += 1e-7
    tied = compare_with_run(scores, truth, retrieval_metrics(noisy, truth)["t2v"], 3)
    assert not tied["equal"] and tied["ties_only"]
    # no near-tie can explain a run that found query 2's video first
    far = compare_with_run(scores, truth, {"R1": 100.0, "R5": 100.0}, 3)
    assert not far["equal"] and not far["ties_only"]


def test_demo_links_each_test_video_once_to_its_raw_file(tmp_path):
    import pandas as pd

    from centerclip.search.demo import link_videos, read_test_set

    for name in ("a.mp4", "b.avi"):
        (tmp_path / name).write_bytes(b"x")
    rows = [("v1", "train", "t", tmp_path / "a.mp4"), ("v2", "test", "c1", tmp_path / "b.avi"),
            ("v1", "test", "c2", tmp_path / "a.mp4"), ("v2", "test", "c3", tmp_path / "b.avi")]
    pd.DataFrame(rows, columns=["video_id", "split", "caption", "raw_path"]).to_csv(tmp_path / "m.csv", index=False)
    test = read_test_set(tmp_path / "m.csv")
    assert test.video_ids == ["v2", "v1"] and test.captions == ["c1", "c2", "c3"] and test.caption_video == [0, 1, 0]
    names = link_videos(test, tmp_path / "links")
    assert names == ["v2.avi", "v1.mp4"]
    assert (tmp_path / "links" / "v1.mp4").resolve() == (tmp_path / "a.mp4").resolve()
