"""Annotation parsers of the four datasets on small hand-written files: what a manifest row is,
and malformed input stopping with the file and line (csv/txt) or key (json/pkl)."""

import json
import pickle

import pytest

from centerclip.data.activitynet import activitynet_membership
from centerclip.data.layouts import MANIFEST_COLUMNS, AnnotationError, lsmdc_movie, read_manifest, write_manifest
from centerclip.data.parsers import activitynet_manifest, build_manifest, lsmdc_manifest, msrvtt_manifest, msvd_manifest


# ---------------------------------------------------------------------------------------- MSVD

def write_msvd(root, captions, lists):
    ann = root / "msvd_data"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "raw-captions.pkl").write_bytes(pickle.dumps(captions))
    for split in ("train", "val", "test"):
        (ann / f"{split}_list.txt").write_text("".join(f"{v}\n" for v in lists.get(split, [])))
    return ann


MSVD_CAPTIONS = {
    "-4wsuPCjDBc_5_15": [["a", "man", "sings"], ["someone", "is", "singing", "&amp;", "dancing", "🎤"]],
    "_0nX-El-ySo_83_93": [["a", "cat", "plays"]],
    "mv89psg6zh4_33_46": [["a", "dog", "runs"], ["the", "dog", "is", "running"], ["dog", "running"]],
}


def test_msvd_one_row_per_caption_in_every_split(tmp_path):
    write_msvd(tmp_path, MSVD_CAPTIONS, {"train": ["-4wsuPCjDBc_5_15"], "val": ["_0nX-El-ySo_83_93"],
                                         "test": ["mv89psg6zh4_33_46"]})
    m = msvd_manifest(tmp_path)
    assert list(m.columns) == MANIFEST_COLUMNS
    assert m.groupby("split").size().to_dict() == {"train": 2, "val": 1, "test": 3}
    # verbatim: html entities and emoji are the tokenizer's business
    assert m.caption.iloc[1] == "someone is singing &amp; dancing 🎤"
    assert m.raw_path.iloc[0] == str(tmp_path / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi")
    assert build_manifest("msvd", tmp_path).equals(m)


@pytest.mark.parametrize("captions, lists, match", [
    (["not", "a", "dict"], {}, r"raw-captions.pkl: expected a dict"),
    ({"a_1_2": "a man sings"}, {"train": ["a_1_2"]}, r"raw-captions.pkl: \['a_1_2'\]: expected a list of token lists"),
    ({"a_1_2": [["a", 3]]}, {"train": ["a_1_2"]}, r"raw-captions.pkl: \['a_1_2'\]"),
    ({"a_1_2": [["a"], []]}, {"train": ["a_1_2"]}, r"raw-captions.pkl: \['a_1_2'\]\[1\]: empty caption"),
    ({"a_1_2": [["a"]]}, {"train": ["a_1_2"], "test": ["", "b_1_2"]}, r"test_list.txt:2: b_1_2 has no caption"),
    ({"a_1_2": [["a"]]}, {"train": ["a_1_2", "a_1_2"]}, r"train_list.txt:2: a_1_2 already listed on line 1"),
    ({"a_1_2": [["a"]]}, {"train": ["a_1_2"], "test": ["a_1_2"]}, r"test videos also in the train split"),
])
def test_msvd_malformed(tmp_path, captions, lists, match):
    write_msvd(tmp_path, captions, lists)
    with pytest.raises(AnnotationError, match=match):
        msvd_manifest(tmp_path)


def test_msvd_unreadable_pickle_and_missing_list(tmp_path):
    ann = write_msvd(tmp_path, MSVD_CAPTIONS, {})
    (ann / "val_list.txt").unlink()
    with pytest.raises(AnnotationError, match=r"val_list.txt: missing"):
        msvd_manifest(tmp_path)
    (ann / "raw-captions.pkl").write_text("not a pickle")
    with pytest.raises(AnnotationError, match=r"raw-captions.pkl: not a readable pickle"):
        msvd_manifest(tmp_path)


# --------------------------------------------------------------------------------------- LSMDC

CLIP = "1001_Flight_2012_00.00.51.926-00.00.54.129"


def lsmdc_line(clip_id, sentence, n_times=4):
    return "\t".join([clip_id] + ["00.00.51.926"] * n_times + [sentence]) + "\n"


def write_lsmdc(ann, train, test, val=None):
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "LSMDC16_annos_training.csv").write_text(train)
    (ann / "LSMDC16_challenge_1000_publictect.csv").write_text(test)
    if val is not None:
        (ann / "LSMDC16_annos_val.csv").write_text(val)


def test_lsmdc_one_row_per_clip_in_movie_folders(tmp_path):
    ann = tmp_path / "annotations"
    train = lsmdc_line(CLIP, "SOMEONE looks.") + "\n" + lsmdc_line("1001_Flight_2012_00.01.00.000-00.01.02.000", "Go.")
    write_lsmdc(ann, train,
                lsmdc_line("3001_21_JUMP_STREET_00.00.01.000-00.00.03.500", 'SOMEONE says "hi" '),
                val=lsmdc_line("2001_Val_Movie_00.00.01.000-00.00.02.000", "A door opens."))
    m = lsmdc_manifest(ann, tmp_path / "videos")
    assert m.split.tolist() == ["train", "train", "val", "test"]
    assert m.raw_path.iloc[0] == str(tmp_path / "videos" / "1001_Flight_2012" / f"{CLIP}.avi")
    assert m.caption.iloc[-1] == 'SOMEONE says "hi" '  # verbatim, quotes are not csv quoting
    assert lsmdc_movie(CLIP) == "1001_Flight_2012"
    assert build_manifest("lsmdc", tmp_path).equals(m)
    (ann / "LSMDC16_annos_val.csv").unlink()  # val is optional
    assert set(lsmdc_manifest(ann, tmp_path / "videos").split) == {"train", "test"}


@pytest.mark.parametrize("train, match", [
    (lsmdc_line(CLIP, "ok") + lsmdc_line(CLIP, "too few", n_times=3), r"LSMDC16_annos_training.csv:2: expected 6"),
    (lsmdc_line(CLIP, "a\tb"), r"LSMDC16_annos_training.csv:1: expected 6 .* found 7"),
    (lsmdc_line(CLIP, "ok") + "\n" + lsmdc_line(CLIP, "  "), r"LSMDC16_annos_training.csv:3: empty caption"),
    (lsmdc_line("nounderscore", "ok"), r"LSMDC16_annos_training.csv:1: clip id"),
])
def test_lsmdc_malformed(tmp_path, train, match):
    write_lsmdc(tmp_path, train, lsmdc_line("3001_X_00.00.01.000-00.00.02.000", "ok"))
    with pytest.raises(AnnotationError, match=match):
        lsmdc_manifest(tmp_path, tmp_path / "videos")


def test_lsmdc_missing_test_file_says_where_to_get_it(tmp_path):
    (tmp_path / "LSMDC16_annos_training.csv").write_text(lsmdc_line(CLIP, "ok"))
    with pytest.raises(AnnotationError, match=r"LSMDC16_challenge_1000_publictect.csv: missing; LSMDC is licence"):
        lsmdc_manifest(tmp_path, tmp_path)


# --------------------------------------------------------------------------------- ActivityNet

def anet_entry(sentences, duration=30.0, stamps=None):
    return {"duration": duration, "timestamps": stamps or [[i, i + 1.5] for i in range(len(sentences))],
            "sentences": sentences}


def write_anet(ann, train, test):
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "train.json").write_text(json.dumps(train))
    (ann / "val_1.json").write_text(json.dumps(test))


def write_lists(lists_dir, train_ids, val_ids, video_path):
    """The original code's three lists: ids with v_, video_path.json keyed without it."""
    lists_dir.mkdir(parents=True, exist_ok=True)
    (lists_dir / "train_ids.json").write_text(json.dumps(train_ids))
    (lists_dir / "val_ids.json").write_text(json.dumps(val_ids))
    (lists_dir / "video_path.json").write_text(json.dumps(video_path))


def every_video_listed(root, train, test):
    """Lists naming every captioned video, so the membership is all of them."""
    write_lists(root / "original_splits", list(train), list(test), {k[2:]: f"{k[2:]}.avi" for k in [*train, *test]})


def test_activitynet_paragraph_per_video_and_extension_lookup(tmp_path):
    write_anet(tmp_path / "annotations",
               {"v_a": anet_entry(["A man walks.", " He sits down."]), "v_b": anet_entry(["One."])},
               {"v_c": anet_entry(["Two.", "Three."]), "v_d": anet_entry(["Four."])})
    every_video_listed(tmp_path, ["v_a", "v_b"], ["v_c", "v_d"])
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("v_a.webm", "v_b.mkv", "v_b.webm", "v_c.mp4"):
        (videos / name).write_bytes(b"")
    m = activitynet_manifest(tmp_path / "annotations", videos)
    assert m.video_id.tolist() == ["v_a", "v_b", "v_c", "v_d"] and m.split.tolist() == ["train"] * 2 + ["test"] * 2
    assert m.caption.iloc[0] == "A man walks.  He sits down."  # joined by one space, kept verbatim
    assert [s.rsplit("/", 1)[1] for s in m.raw_path] == ["v_a.webm", "v_b.mkv", "v_c.mp4", "v_d.mp4"]
    assert build_manifest("activitynet", tmp_path).equals(m)
    # One layout only: captions.zip unpacks to captions/, whose files the user moves into annotations/.
    (tmp_path / "annotations").rename(tmp_path / "captions")
    with pytest.raises(AnnotationError, match=r"annotations/train.json: missing \(.*captions/train.json exists: "
                                              r"move it here\).*captions.zip"):
        build_manifest("activitynet", tmp_path)


@pytest.mark.parametrize("entry, match", [
    ({"duration": 3.0, "timestamps": []}, r"val_1.json: \['v_bad'\]: no 'sentences'"),
    (anet_entry([]), r"\['v_bad'\]: sentences must be a non-empty list"),
    (anet_entry(["a", "b"], stamps=[[0, 1]]), r"\['v_bad'\]: 1 timestamps but 2 sentences"),
    (anet_entry(["a"], stamps=[[0]]), r"\['v_bad'\]: timestamps must be a list of \[start, end\] pairs"),
    (anet_entry(["a"], duration="long"), r"\['v_bad'\]: duration must be a positive number"),
    (anet_entry(["", " "]), r"\['v_bad'\]: empty caption"),
    ("just text", r"\['v_bad'\]: expected an object"),
])
def test_activitynet_malformed(tmp_path, entry, match):
    write_anet(tmp_path, {"v_ok": anet_entry(["fine."])}, {"v_ok2": anet_entry(["fine."]), "v_bad": entry})
    with pytest.raises(AnnotationError, match=match):
        activitynet_manifest(tmp_path, tmp_path)


def test_activitynet_not_json_or_missing(tmp_path):
    with pytest.raises(AnnotationError, match=r"train.json: missing"):
        activitynet_manifest(tmp_path, tmp_path)
    (tmp_path / "train.json").write_text("{oops")
    with pytest.raises(AnnotationError, match=r"train.json: not JSON"):
        activitynet_manifest(tmp_path, tmp_path)


def write_membership_case(root):
    """Caption files and lists that differ in every way the real ones do (and a few more)."""
    write_anet(root / "annotations",
               {v: anet_entry([f"{v} train."]) for v in ("v_a", "v_b", "v_c", "v_d")},
               {v: anet_entry([f"{v} test."]) for v in ("v_NHznDFD3V3k", "v_e", "v_f", "v_g")})
    write_lists(root / "original_splits",
                ["v_d", "v_b", "v_x", "v_a", "v_b"],      # v_x: not captioned; v_b twice; v_c not listed
                ["v_f", "v_NHznDFD3V3k", "v_e", "v_g"],   # the broken one is listed and captioned
                # keys without v_; "v_d" (with the prefix) is not video d; g is not there at all
                {"a": "a.avi", "b": "b.mp4", "c": "c.avi", "v_d": "v_d.avi", "x": "x.avi", "e": "e.mkv",
                 "f": "f.avi", "NHznDFD3V3k": "NHznDFD3V3k.avi"})


def test_activitynet_membership_is_the_original_intersection(tmp_path):
    """train = train_ids.json ∩ train.json ∩ video_path.json (keys without v_), minus v_NHznDFD3V3k; the same
    for the test split with val_ids.json and val_1.json; in the order of the id lists."""
    write_membership_case(tmp_path)
    membership = activitynet_membership(tmp_path / "annotations")
    train, test = membership.splits["train"], membership.splits["test"]
    assert train.kept == ("v_b", "v_a") and test.kept == ("v_f", "v_e")
    assert dict(train.listed) == {"train_ids.json": 4, "train.json": 4}
    assert {r: v for r, v in train.left_out.items() if v} == {
        "in train_ids.json, not in train.json": ("v_x",), "in train.json, not in train_ids.json": ("v_c",),
        "in both, not in video_path.json (the original had no such video)": ("v_d",)}
    assert {r: v for r, v in test.left_out.items() if v} == {
        "dropped as broken by the original (v_NHznDFD3V3k)": ("v_NHznDFD3V3k",),
        "in both, not in video_path.json (the original had no such video)": ("v_g",)}

    m = build_manifest("activitynet", tmp_path)
    assert m.video_id.tolist() == ["v_b", "v_a", "v_f", "v_e"] and m.split.tolist() == ["train"] * 2 + ["test"] * 2
    assert m.caption.tolist() == ["v_b train.", "v_a train.", "v_f test.", "v_e test."]
    # no video file placed: still in the manifest (the frame-cache stage lists it as missing)
    assert m.raw_path.tolist() == [str(tmp_path / "videos" / f"{v}.mp4") for v in m.video_id]

    record = membership.record()
    assert record["train"]["kept"] == 2 and record["test"]["kept"] == 2
    assert record["test"]["left_out"]["dropped as broken by the original (v_NHznDFD3V3k)"] == 1
    assert record["test"]["left_out_videos"]["in both, not in video_path.json (the original had no such video)"] == [
        "v_g"]
    assert "github.com/mzhaoshuai/CenterCLIP" in record["rule"] and json.loads(json.dumps(record)) == record
    line = membership.summary()
    assert "\n" not in line and "train 2 videos" in line and "test 2 videos" in line and "1 dropped as broken" in line


def test_activitynet_lists_elsewhere_and_missing(tmp_path):
    write_membership_case(tmp_path)
    (tmp_path / "original_splits").rename(tmp_path / "lists")
    with pytest.raises(AnnotationError) as exc:
        build_manifest("activitynet", tmp_path)
    msg = str(exc.value)
    for name in ("train_ids.json", "val_ids.json", "video_path.json"):  # one message naming every file
        assert str(tmp_path / "original_splits" / name) in msg
    assert "https://raw.githubusercontent.com/mzhaoshuai/CenterCLIP/" in msg and "download_lists" in msg
    assert build_manifest("activitynet", tmp_path, lists_dir=tmp_path / "lists").video_id.tolist() == [
        "v_b", "v_a", "v_f", "v_e"]
    (tmp_path / "lists" / "val_ids.json").unlink()
    with pytest.raises(AnnotationError, match=r"missing: \S+/lists/val_ids.json\. They decide"):
        activitynet_manifest(tmp_path / "annotations", tmp_path / "videos", tmp_path / "lists")


@pytest.mark.parametrize("name, content, match", [
    ("train_ids.json", ["a", "v_b"], r"train_ids.json: \[0\]: expected an id 'v_<youtube id>', found 'a'"),
    ("val_ids.json", {"v_e": 1}, r"val_ids.json: expected a JSON list"),
    ("video_path.json", ["e"], r"video_path.json: expected a dict"),
    ("video_path.json", {"v_a": "a", "v_b": "b"}, r"train_ids.json: none of its 4 videos is also in train.json and "),
])
def test_activitynet_lists_malformed(tmp_path, name, content, match):
    write_membership_case(tmp_path)
    (tmp_path / "original_splits" / name).write_text(json.dumps(content))
    with pytest.raises(AnnotationError, match=match):
        build_manifest("activitynet", tmp_path)


# ------------------------------------------------------------------------- MSR-VTT, dispatcher

def test_msrvtt_empty_caption_is_reported(tmp_path):
    ann = tmp_path / "msrvtt_data"
    ann.mkdir()
    (ann / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\n")
    (ann / "MSRVTT_data.json").write_text(json.dumps({"sentences": [
        {"video_id": "video0", "caption": "a cat"}, {"video_id": "video0", "caption": " "}]}))
    (ann / "MSRVTT_JSFUSION_test.csv").write_text("key,vid_key,video_id,sentence\nret0,msr1,video1,a dog\n")
    with pytest.raises(AnnotationError, match=r"MSRVTT_data.json: sentences\[1\] \(video video0\): empty caption"):
        msrvtt_manifest(ann, tmp_path)
    (ann / "MSRVTT_data.json").write_text(json.dumps({"sentences": [{"video_id": "video0", "caption": "a cat"}]}))
    assert len(build_manifest("msrvtt", tmp_path)) == 2
    (ann / "MSRVTT_JSFUSION_test.csv").write_text("key,vid_key,video_id,sentence\nret0,msr1,video1,\n")
    with pytest.raises(AnnotationError, match=r"MSRVTT_JSFUSION_test.csv:2: empty caption"):
        msrvtt_manifest(ann, tmp_path)


def test_build_manifest_rejects_unknown_format_and_options(tmp_path):
    with pytest.raises(AnnotationError, match=r"unknown dataset format 'webvid'"):
        build_manifest("webvid", tmp_path)
    with pytest.raises(AnnotationError, match=r"msvd: unknown manifest option\(s\) \['train_split'\]"):
        build_manifest("msvd", tmp_path, train_split="9k")
    with pytest.raises(AnnotationError, match=r"msrvtt: unknown manifest option\(s\) \['lists_dir'\]"):
        build_manifest("msrvtt", tmp_path, lists_dir=tmp_path)


# ------------------------------------------------------------------------------ manifest file

def test_manifest_written_before_raw_path_reads_its_source_column_as_raw_path(tmp_path):
    # finished runs keep their manifest.csv, whose raw video column was called "source"
    old = tmp_path / "manifest.csv"
    old.write_text("video_id,split,caption,source\nvideo1,train,a red circle moves left,/raw/video1.mp4\n"
                   "video2,test,,/raw/video 2.mp4\n")
    m = read_manifest(old)
    assert list(m.columns) == MANIFEST_COLUMNS
    assert m.raw_path.tolist() == ["/raw/video1.mp4", "/raw/video 2.mp4"]
    assert m.caption.tolist() == ["a red circle moves left", ""]  # strings, even empty
    write_manifest(m, tmp_path / "new.csv")
    assert (tmp_path / "new.csv").read_text().splitlines()[0] == "video_id,split,caption,raw_path"
    assert read_manifest(tmp_path / "new.csv").equals(m)
    (tmp_path / "bad.csv").write_text("video_id,split,caption\nvideo1,train,x\n")
    with pytest.raises(AnnotationError, match=r"bad.csv: not a manifest, missing columns \['raw_path'\]"):
        read_manifest(tmp_path / "bad.csv")
