"""Annotation parsers of the four datasets on small hand-written files: what a manifest row is,
and malformed input stopping with the file and line (csv/txt) or key (json/pkl)."""

import json
import pickle

import pytest

from centerclip.data.annotations import (
    MANIFEST_COLUMNS,
    AnnotationError,
    activitynet_manifest,
    build_manifest,
    lsmdc_manifest,
    lsmdc_movie,
    msrvtt_manifest,
    msvd_manifest,
)


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
    assert m.source.iloc[0] == str(tmp_path / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi")
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
    assert m.source.iloc[0] == str(tmp_path / "videos" / "1001_Flight_2012" / f"{CLIP}.avi")
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


def test_activitynet_paragraph_per_video_and_extension_lookup(tmp_path):
    write_anet(tmp_path / "annotations",
               {"v_a": anet_entry(["A man walks.", " He sits down."]), "v_b": anet_entry(["One."])},
               {"v_c": anet_entry(["Two.", "Three."]), "v_d": anet_entry(["Four."])})
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("v_a.webm", "v_b.mkv", "v_b.webm", "v_c.mp4"):
        (videos / name).write_bytes(b"")
    m = activitynet_manifest(tmp_path / "annotations", videos)
    assert m.video_id.tolist() == ["v_a", "v_b", "v_c", "v_d"] and m.split.tolist() == ["train"] * 2 + ["test"] * 2
    assert m.caption.iloc[0] == "A man walks.  He sits down."  # joined by one space, kept verbatim
    assert [s.rsplit("/", 1)[1] for s in m.source] == ["v_a.webm", "v_b.mkv", "v_c.mp4", "v_d.mp4"]
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
