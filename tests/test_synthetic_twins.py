"""Synthetic twins of MSVD, LSMDC and ActivityNet: real layouts that the real parsers read unchanged,
deterministic annotations, captions visible in the pixels, ActivityNet timestamps matching the video."""

import filecmp
import pickle
import re
from pathlib import Path

import decord
import numpy as np
import pytest

from centerclip.data.parsers import build_manifest
from centerclip.data.synthetic.render import COLOURS, MOTIONS, _shape_mask, event_frames, render_frames
from centerclip.data.synthetic.twins import (make_activitynet_twin, make_lsmdc_twin, make_msvd_twin, plan_timed_videos,
                                             plan_videos)

MSVD_ARGS = dict(n_train=4, n_val=2, n_test=3, seed=3, captions_per_video=5)
LSMDC_ARGS = dict(n_train=4, n_val=2, n_test=3, seed=3, clips_per_movie=2)
ANET_ARGS = dict(n_train=3, n_test=2, seed=3, seconds=(20.0, 24.0), mkv_share=0.5)


@pytest.fixture(scope="module")
def msvd(tmp_path_factory):
    root = tmp_path_factory.mktemp("msvd")
    return root, make_msvd_twin(root, **MSVD_ARGS)


@pytest.fixture(scope="module")
def lsmdc(tmp_path_factory):
    root = tmp_path_factory.mktemp("lsmdc")
    return root, make_lsmdc_twin(root, **LSMDC_ARGS)


@pytest.fixture(scope="module")
def anet(tmp_path_factory):
    root = tmp_path_factory.mktemp("anet")
    return root, make_activitynet_twin(root, **ANET_ARGS)


def assert_same_annotations(a: Path, b: Path, names):
    for name in names:
        assert filecmp.cmp(a / name, b / name, shallow=False), name


def test_msvd_twin_round_trip(msvd, tmp_path):
    root, counts = msvd
    assert counts == {"videos": 9, "train": 4, "val": 2, "test": 3, "captions": 45}
    m = build_manifest("msvd", root)
    assert m.groupby("split").video_id.nunique().to_dict() == {"train": 4, "val": 2, "test": 3}
    assert (m.groupby("video_id").size() == 5).all()  # every caption, in train and test alike
    assert all(Path(s).is_file() and s.endswith(".avi") for s in m.raw_path)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{11}_\d+_\d+", v) for v in m.video_id)
    caps = pickle.loads((root / "msvd_data" / "raw-captions.pkl").read_bytes())
    assert all(isinstance(t, str) for c in caps.values() for toks in c for t in toks)
    # one right answer: no caption of a test video describes another test video
    test = m[m.split == "test"].groupby("video_id").caption.apply(set)
    assert sum(len(s) for s in test) == len(set().union(*test))
    # same seed -> the same annotation files
    make_msvd_twin(tmp_path, **MSVD_ARGS)
    assert_same_annotations(root / "msvd_data", tmp_path / "msvd_data",
                            ["raw-captions.pkl", "train_list.txt", "val_list.txt", "test_list.txt"])


def test_lsmdc_twin_round_trip(lsmdc, tmp_path):
    root, counts = lsmdc
    assert counts == {"videos": 9, "train": 4, "val": 2, "test": 3, "movies": 5}
    first = (root / "annotations" / "LSMDC16_annos_training.csv").read_text().splitlines()[0].split("\t")
    assert len(first) == 6 and re.fullmatch(r"\d{4}_\w+_\d\d\.\d\d\.\d\d\.\d{3}-\d\d\.\d\d\.\d\d\.\d{3}", first[0])
    m = build_manifest("lsmdc", root)
    assert m.groupby("split").size().to_dict() == {"train": 4, "val": 2, "test": 3}
    assert m.video_id.is_unique and m[m.split == "test"].caption.is_unique
    assert all(Path(s).is_file() and Path(s).parent.name == v.rsplit("_", 1)[0] for v, s in zip(m.video_id, m.raw_path))
    movies = {s: set(m.video_id[m.split == s].str.rsplit("_", n=1).str[0]) for s in ("train", "val", "test")}
    assert not (movies["train"] & movies["test"]) and not (movies["train"] & movies["val"])
    make_lsmdc_twin(tmp_path, **LSMDC_ARGS)
    assert_same_annotations(root / "annotations", tmp_path / "annotations",
                            ["LSMDC16_annos_training.csv", "LSMDC16_annos_val.csv",
                             "LSMDC16_challenge_1000_publictect.csv"])


def test_activitynet_twin_round_trip(anet, tmp_path):
    import json

    root, counts = anet
    # 3 + 2 videos in the original's membership, and per split a captioned one its lists leave out and one
    # its video_path.json lacks (the uncaptioned one and v_NHznDFD3V3k have no video)
    assert counts["videos"] == 3 + 2 + 2 * 2 and counts["train"] == 3 and counts["test"] == 2
    m = build_manifest("activitynet", root)
    assert m.groupby("split").size().to_dict() == {"train": 3, "test": 2} and m.video_id.is_unique
    data = {**json.loads((root / "annotations" / "train.json").read_text()),
            **json.loads((root / "annotations" / "val_1.json").read_text())}
    for row in m.itertuples():
        entry = data[row.video_id]
        assert row.caption == " ".join(entry["sentences"])
        assert 3 <= len(entry["sentences"]) == len(entry["timestamps"]) <= 5
        ends = [0.0] + [e for _, e in entry["timestamps"]]
        for (start, end), prev_end in zip(entry["timestamps"], ends):
            assert prev_end <= start < end <= entry["duration"]  # ordered, non-overlapping, inside the video
        vr = decord.VideoReader(row.raw_path)
        assert len(vr) / vr.get_avg_fps() == pytest.approx(entry["duration"], abs=0.2)
    assert {Path(s).suffix for s in m.raw_path} == {".mp4", ".mkv"}  # both, as in the real crawls
    make_activitynet_twin(tmp_path, **ANET_ARGS)
    assert_same_annotations(root / "annotations", tmp_path / "annotations", ["train.json", "val_1.json"])
    assert_same_annotations(root / "original_splits", tmp_path / "original_splits",
                            ["train_ids.json", "val_ids.json", "video_path.json"])


def test_activitynet_twin_lists_are_in_the_originals_formats_and_differ_from_the_captions(anet):
    """Ids with v_ in the id lists, without it in video_path.json; each id list names a video the caption
    file lacks and lacks one it has, video_path.json lacks a captioned and listed one, and the test split
    has v_NHznDFD3V3k captioned and listed (without a video): the manifest is exactly the intersection."""
    import json

    root, counts = anet
    lists = {name: json.loads((root / "original_splits" / name).read_text())
             for name in ("train_ids.json", "val_ids.json", "video_path.json")}
    had = lists["video_path.json"]
    assert isinstance(had, dict) and not any(k.startswith("v_") for k in had)
    assert all(v == f"{k}{Path(v).suffix}" and Path(v).suffix in (".mp4", ".mkv") for k, v in had.items())
    m = build_manifest("activitynet", root)
    for split, ids_name, captions_name in (("train", "train_ids.json", "train.json"),
                                           ("test", "val_ids.json", "val_1.json")):
        ids = lists[ids_name]
        captioned = json.loads((root / "annotations" / captions_name).read_text())
        assert all(v.startswith("v_") for v in ids) and len(set(ids)) == len(ids)
        assert set(ids) - set(captioned) and set(captioned) - set(ids)
        assert [v for v in set(ids) & set(captioned) if v[2:] not in had]
        expected = [v for v in ids if v in captioned and v[2:] in had and v != "v_NHznDFD3V3k"]
        assert m[m.split == split].video_id.tolist() == expected and len(expected) == counts[split]
    assert "v_NHznDFD3V3k" in lists["val_ids.json"] and "NHznDFD3V3k" in had
    assert not list((root / "videos").glob("v_NHznDFD3V3k.*"))
    on_disk = {p.stem for p in (root / "videos").iterdir()}
    assert set(m.video_id) < on_disk  # videos outside the membership exist and are still left out


def test_activitynet_events_are_on_screen_at_their_timestamps():
    for v in plan_timed_videos(3, seed=5, seconds=(20.0, 22.0)):
        frames = render_frames(v, seed=1)
        assert len(frames) == round(v.seconds * v.fps)
        playing = event_frames(v, len(frames))
        for k, ((start, end), e) in enumerate(zip(v.spans, v.events)):
            t = int((start + end) / 2 * v.fps)
            assert playing[t][0] == k
            assert (np.abs(frames[t].astype(int) - COLOURS[e.colour]).sum(-1) == 0).any()
        gaps = [t for t, p in enumerate(playing) if p is None]
        assert gaps and all(frames[t].max() < 60 for t in gaps)  # background only between events


def test_timed_plans_are_deterministic_and_test_paragraphs_unique():
    a = plan_timed_videos(12, seed=2, unique=True)
    assert a == plan_timed_videos(12, seed=2, unique=True) and a != plan_timed_videos(12, seed=3)
    assert len({v.events for v in a}) == 12


def test_refactored_renderer_reproduces_the_msrvtt_twin():
    """Equal-share timing and the bounding-box drawing give exactly the original pixels."""
    for i, v in enumerate(plan_videos(6, seed=11, seconds=(0.5, 1.0))):
        h, w = v.height, v.width
        n = round(v.seconds * v.fps)
        rng = np.random.default_rng(i)
        expected = np.repeat((np.full((h, w, 3), 30, np.uint8) + rng.integers(0, 12, (h, w, 3), dtype=np.uint8))[None],
                             n, axis=0)
        r, per_event = 0.14 * min(h, w), n / len(v.events)
        for t in range(n):  # the original loop, verbatim
            e = v.events[min(int(t / per_event), len(v.events) - 1)]
            progress = (t - int(t / per_event) * per_event) / max(per_event - 1, 1)
            dx, dy = MOTIONS[e.motion]
            cx = w / 2 + dx * (progress - 0.5) * (w - 3 * r)
            cy = h / 2 + dy * (progress - 0.5) * (h - 3 * r)
            expected[t][_shape_mask(e.shape, h, w, cx, cy, r)] = COLOURS[e.colour]
        np.testing.assert_array_equal(render_frames(v, seed=i), expected)
