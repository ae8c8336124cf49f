"""The thin data path for real: synthetic videos -> annotations -> ffmpeg -> HDF5 -> sampled clips."""

import csv
import json
import pickle

import h5py
import numpy as np
import pytest
import torch

from centerclip.data.compress import compress_video
from centerclip.data.datasets import CLIP_MEAN, CLIP_STD, VideoTextDataset, normalise_frames, sample_frame_indices
from centerclip.data.frame_cache import FrameCache, _jpeg_decode, build_frame_cache, centre_crop
from centerclip.data.layouts import AnnotationError, read_manifest, write_manifest
from centerclip.data.parsers import msrvtt_manifest
from centerclip.data.synthetic.render import render_frames
from centerclip.data.synthetic.twins import FORMATS, make_msrvtt_twin, plan_videos


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    root = tmp_path_factory.mktemp("msrvtt")
    counts = make_msrvtt_twin(root, n_train=6, n_test=3, seed=1, captions_per_video=2)
    return root, counts


@pytest.fixture(scope="module")
def cache(twin, tmp_path_factory):
    root, _ = twin
    out = tmp_path_factory.mktemp("cache")
    manifest = msrvtt_manifest(root / "msrvtt_data", root / "MSRVTT" / "videos" / "all")
    videos = manifest.drop_duplicates("video_id")
    compressed = []
    for row in videos.itertuples():
        dst = out / "3fps" / f"{row.video_id}.mp4"
        info = compress_video(row.raw_path, dst)
        assert min(info["width"], info["height"]) == 224
        compressed.append((row.video_id, dst))
    broken = out / "3fps" / "broken.mp4"
    broken.write_text("not a video")
    bad = build_frame_cache(compressed + [("broken", broken)], out / "frames.h5")
    return out / "frames.h5", compressed, bad, manifest


def test_twin_has_msrvtt_layout(twin):
    root, counts = twin
    assert counts == {"videos": 9, "train": 6, "test": 3, "sentences": 6 * 2 + 3}
    assert len(list((root / "MSRVTT" / "videos" / "all").glob("video*.mp4"))) == 9
    data = json.loads((root / "msrvtt_data" / "MSRVTT_data.json").read_text())
    assert {"video_id", "caption", "sen_id"} <= set(data["sentences"][0])
    with open(root / "msrvtt_data" / "MSRVTT_JSFUSION_test.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["key", "vid_key", "video_id", "sentence"] and len(rows) == 3
    train7 = (root / "msrvtt_data" / "MSRVTT_train.7k.csv").read_text().split()[1:]
    train9 = (root / "msrvtt_data" / "MSRVTT_train.9k.csv").read_text().split()[1:]
    assert set(train7) < set(train9)


def test_plan_is_deterministic_varied_and_test_captions_unique():
    a, b = plan_videos(60, seed=3), plan_videos(60, seed=3)
    assert a == b and a != plan_videos(60, seed=4)
    assert {(v.width, v.height, v.fps) for v in a} == set(FORMATS)  # portrait 240x320 included
    test = plan_videos(30, seed=5, unique=True)
    assert len({v.caption() for v in test}) == 30


def test_caption_is_visible_in_pixels():
    v = plan_videos(1, seed=0)[0]
    frames = render_frames(v)
    assert frames.shape == (round(v.seconds * v.fps), v.height, v.width, 3)
    # the shape's colour is present in the first frame
    from centerclip.data.synthetic.render import COLOURS

    colour = np.array(COLOURS[v.events[0].colour])
    assert (np.abs(frames[0].astype(int) - colour).sum(-1) == 0).any()


def test_manifest(twin, tmp_path):
    root, _ = twin
    m = msrvtt_manifest(root / "msrvtt_data", root / "MSRVTT" / "videos" / "all", train_split="9k")
    assert set(m.split) == {"train", "test"}
    assert m[m.split == "test"].video_id.is_unique
    assert m[m.split == "train"].video_id.nunique() == 6
    write_manifest(m, tmp_path / "manifest.csv")
    assert read_manifest(tmp_path / "manifest.csv").equals(m)
    m7 = msrvtt_manifest(root / "msrvtt_data", root / "MSRVTT" / "videos" / "all", train_split="7k")
    assert m7[m7.split == "train"].video_id.nunique() < 6


def test_malformed_annotations_name_file_and_line(twin, tmp_path):
    root, _ = twin
    ann = tmp_path / "msrvtt_data"
    ann.mkdir()
    for name in ("MSRVTT_data.json", "MSRVTT_train.9k.csv"):
        (ann / name).write_bytes((root / "msrvtt_data" / name).read_bytes())
    (ann / "MSRVTT_JSFUSION_test.csv").write_text("key,vid_key,video_id,sentence\nret0,msr1,,a caption\n")
    with pytest.raises(AnnotationError, match=r"MSRVTT_JSFUSION_test.csv:2"):
        msrvtt_manifest(ann, tmp_path)
    (ann / "MSRVTT_train.9k.csv").write_text("id\nvideo1\n")
    with pytest.raises(AnnotationError, match=r"MSRVTT_train.9k.csv:1"):
        msrvtt_manifest(ann, tmp_path)


def test_centre_crop_by_hand():
    frames = np.arange(4 * 6).reshape(1, 4, 6, 1).repeat(3, axis=3).astype(np.uint8)  # pixel value = 6 row + col
    np.testing.assert_array_equal(centre_crop(frames, 2)[0, :, :, 0], [[8, 9], [14, 15]])  # rows 1-2, cols 2-3
    np.testing.assert_array_equal(centre_crop(frames, 3)[0, :, :, 0], [[1, 2, 3], [7, 8, 9], [13, 14, 15]])
    assert (centre_crop(frames, 2)[..., 1:] == centre_crop(frames, 2)[..., :1]).all()  # every channel alike
    # a side shorter than the crop is zero-padded around the frame, centred
    wide = np.full((1, 1, 4, 3), 200, dtype=np.uint8)
    np.testing.assert_array_equal(centre_crop(wide, 3)[0, :, :, 0], [[0, 0, 0], [200, 200, 200], [0, 0, 0]])


def test_cache_holds_every_frame_centre_cropped(cache):
    path, compressed, bad, _ = cache
    fc = FrameCache(path)
    assert len(fc) == len(compressed)
    import decord

    shapes = set()
    for vid, mp4 in compressed:
        # the frames decord reads from the compressed file, cut to their centre 224 x 224 here
        full = decord.VideoReader(str(mp4), num_threads=1)
        full = full.get_batch(list(range(len(full)))).asnumpy()
        h, w = full.shape[1:3]
        shapes.add((h, w))
        top, left = (h - 224) // 2, (w - 224) // 2
        direct = full[:, top:top + 224, left:left + 224]
        assert fc.num_frames(vid) == len(direct)
        np.testing.assert_array_equal(fc.read(vid, np.arange(len(direct))), direct)
        idx = [len(direct) - 1, 0, 0]  # unsorted, repeated
        np.testing.assert_array_equal(fc.read(vid, idx), direct[idx])
    assert {(224, 298), (298, 224)} <= shapes  # landscape and portrait: the crop cuts either side
    with h5py.File(path) as f:
        assert f["frames"].dtype == np.uint8 and f["frames"].shape[1:] == (224, 224, 3)
        assert f.attrs["n_videos"] == len(compressed)
    assert not list(path.parent.glob(".*tmp*"))


def test_broken_video_is_listed_not_dropped(cache):
    path, _, bad, _ = cache
    assert [vid for vid, _ in bad] == ["broken"]
    assert "broken.mp4" in bad[0][1]
    assert FrameCache(path).missing == {"broken": bad[0][1]}  # the cache itself says what it lacks and why


@pytest.mark.parametrize("storage", ["lzf", "jpeg"])
def test_other_storages_read_the_same_frames(cache, tmp_path, storage):
    raw_path, compressed, _, _ = cache
    path = tmp_path / f"{storage}.h5"
    bad = build_frame_cache(compressed[:2], path, storage=storage, missing=[("gone", "compress: zero-byte file")])
    assert bad == []
    raw, other = FrameCache(raw_path), FrameCache(path)
    assert other.storage == storage and other.missing == {"gone": "compress: zero-byte file"}
    vid = compressed[1][0]
    idx = [2, 0, 2, raw.num_frames(vid) - 1]  # unsorted reads with repeats, as short videos need
    a, b = raw.read(vid, idx).astype(int), other.read(vid, idx).astype(int)
    assert a.shape == b.shape == (4, 224, 224, 3)
    if storage == "lzf":
        assert (a == b).all()  # lossless
    else:
        assert abs(a - b).mean() < 3  # JPEG q90: lossy, close
        # the fast decoder gives Pillow's pixels: a cache reads the same wherever it is read
        import io

        from PIL import Image

        with h5py.File(path) as f:
            blob = f["jpeg"][0]
        assert (np.asarray(Image.open(io.BytesIO(blob.tobytes())).convert("RGB")) == _jpeg_decode(blob)).all()


def test_unknown_storage_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown frame cache storage 'png'"):
        build_frame_cache([], tmp_path / "x.h5", storage="png")


def test_frame_cache_survives_pickling(cache):
    path, compressed, _, _ = cache
    fc = FrameCache(path)
    fc.read(compressed[0][0], [0])
    clone = pickle.loads(pickle.dumps(fc))
    np.testing.assert_array_equal(clone.read(compressed[0][0], [0]), fc.read(compressed[0][0], [0]))


def test_frame_sampling_rules():
    rng = np.random.default_rng(0)
    idx, mask = sample_frame_indices(36, 12, train=True, rng=rng)
    assert mask.all() and all(3 * i <= j < 3 * i + 3 for i, j in enumerate(idx))
    idx, mask = sample_frame_indices(36, 12, train=False)
    assert idx.tolist() == [int(36 / 12 / 2 + i * 3) for i in range(12)]
    idx, mask = sample_frame_indices(5, 12, train=False)
    assert idx.tolist() == [0, 1, 2, 3, 4] + [4] * 7 and mask.sum() == 5
    idx, mask = sample_frame_indices(13, 12, train=True, rng=rng)  # 1 frame per segment
    assert len(set(idx.tolist())) == 12 and mask.all()


def test_frames_are_scaled_to_0_1_then_clip_normalised():
    # CLIP was trained on (pixel / 255 - mean) / std: known values per channel for black, white and grey
    frames = np.zeros((2, 1, 3, 3), dtype=np.uint8)  # [T, H, W, 3]
    frames[0, 0, 0] = 255  # white
    frames[0, 0, 1] = 128
    frames[1, 0, 2] = (255, 0, 51)
    x = normalise_frames(frames)
    assert x.shape == (2, 3, 1, 3) and x.dtype == torch.float32
    white = [(1 - 0.48145466) / 0.26862954, (1 - 0.4578275) / 0.26130258, (1 - 0.40821073) / 0.27577711]
    black = [-0.48145466 / 0.26862954, -0.4578275 / 0.26130258, -0.40821073 / 0.27577711]
    grey = [(128 / 255 - 0.48145466) / 0.26862954, (128 / 255 - 0.4578275) / 0.26130258,
            (128 / 255 - 0.40821073) / 0.27577711]
    mixed = [white[0], black[1], (51 / 255 - 0.40821073) / 0.27577711]
    expected = torch.tensor([[white, grey, black], [black, black, mixed]])
    # expected[t, w] holds the 3 channels of pixel (0, w) of frame t: same layout as x[t, :, 0, w]
    torch.testing.assert_close(x[:, :, 0, :].permute(0, 2, 1), expected, rtol=0, atol=1e-6)
    assert x[0, 0, 0, 0].item() == pytest.approx(1.9303363, abs=1e-6)  # channel 0 of white, by hand


def test_dataset_items(cache):
    path, _, _, manifest = cache
    pairs = list(zip(manifest.video_id, manifest.caption))
    ds = VideoTextDataset(path, pairs, num_frames=12, context_length=32, train=True, seed=0)
    item = ds[0]
    assert item["video"].shape == (12, 3, 224, 224) and item["video"].dtype == torch.float32
    assert item["tokens"].shape == (32,) and item["tokens"][0] == 49406
    # same (seed, epoch, item) -> same frames; another epoch -> possibly other frames, same shape
    torch.testing.assert_close(ds[0]["video"], item["video"])
    # the model input is the cached uint8 frames at the evaluation positions, scaled to [0, 1] and
    # CLIP-normalised, written out here in float64: (pixel / 255 - mean) / std per channel
    evaluation = VideoTextDataset(path, pairs, num_frames=12, context_length=32, train=False)[0]
    fc = FrameCache(path)
    idx, _ = sample_frame_indices(fc.num_frames(pairs[0][0]), 12, train=False)
    pixels = fc.read(pairs[0][0], idx).astype(np.float64).transpose(0, 3, 1, 2)  # [T, 3, H, W]
    expected = (pixels / 255.0 - np.array(CLIP_MEAN)[:, None, None]) / np.array(CLIP_STD)[:, None, None]
    np.testing.assert_allclose(evaluation["video"].numpy(), expected, rtol=0, atol=1e-5)
    # a video recorded as bad is left out (and said so); an unknown one means a wrong cache
    ds = VideoTextDataset(path, pairs + [("broken", "x")], 12, 32, train=False)
    assert len(ds) == len(pairs) and [v for v, _ in ds.dropped] == ["broken"]
    assert "broken.mp4" in ds.dropped[0][1]
    with pytest.raises(KeyError, match="nor recorded there as bad.*rebuild it"):
        VideoTextDataset(path, [("never_seen", "x")], 12, 32, train=False)


def test_test_coverage_check(tmp_path):
    from centerclip.data.bad_videos import BadTestVideos, check_test_coverage, read_bad_videos, write_bad_videos

    path = tmp_path / "bad_videos.tsv"
    write_bad_videos([("v1", "train", "compress", "empty file"), ("t9", "test", "cache", "cannot decode")], path)
    bad = read_bad_videos(path)
    with pytest.raises(BadTestVideos) as ei:
        check_test_coverage(bad, [], path, "msrvtt")
    msg = str(ei.value)
    assert "t9 (cache): cannot decode" in msg and "datasets.msrvtt.allow_missing_test_videos" in msg
    assert "v1" not in msg  # a bad training video never stops the run
    cov = check_test_coverage(bad, ["t9", "t3"], path, "msrvtt")
    assert cov == {"dataset": "msrvtt", "complete": False, "missing_test_videos": ["t9"],
                   "bad_train_videos": ["v1"], "allowed_but_not_bad": ["t3"]}
    assert check_test_coverage(bad[bad.split == "train"], [], path, "msrvtt")["complete"]
