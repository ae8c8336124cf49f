"""Bad input, end to end: real sample videos plus generated awkward and broken ones, in the real
MSR-VTT on-disk layout, through the workflow (acquire -> manifest -> ffmpeg -> HDF5 -> test-coverage
check -> training -> evaluation -> table).

The documented outcome of each case (README, "Bad input"):

* usable but awkward videos (real 720p with audio, 176x144, portrait, odd size, rotated, variable
  frame rate, clips shorter than the 12 sampled frames, unicode/space names) are compressed to
  3 fps with the shorter side 224 and cached; a short clip repeats its last frame, masked;
* broken videos (truncated, zero-byte, text named .mp4, audio-only) are listed in
  ``bad_videos.tsv`` and in the cache with the reason; training goes on without them;
* a broken TEST video stops the run at the ``check_test_videos`` rule, naming the video and the config
  key, while the cache and the bad-video list stay; once the config allows it to be missing, only
  what depends on the check runs, the evaluation leaves it out and the table says the test set
  was incomplete;
* captions keep html entities and emoji verbatim; the tokenizer unescapes them;
* an empty caption stops the manifest with the file and the sentence's position.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from demo_config import quick_pretraining
from workflow_runner import run_snakemake

from centerclip.data.bad_videos import read_bad_videos
from centerclip.data.datasets import VideoTextDataset
from centerclip.data.frame_cache import FrameCache
from centerclip.model.tokenizer import tokenize
from tests.sample_videos import find_sample_video, sample_video
from tests.videos import make_audio_only, make_vfr_video, make_video, truncate, write_text

REPO = Path(__file__).resolve().parent.parent
RUN = "msrvtt9k_b32_meanP"
METRICS = f"results/demo/runs/msrvtt/{RUN}/seed42/metrics.json"
HTML_EMOJI = "a man &amp; his dog 🐶 play &lt;3 &quot;fetch&quot;"
UNICODE_ID = "vidéo ünï 1"


def _build_raw(root: Path, tmp: Path) -> dict[str, dict]:
    """An MSR-VTT-layout dataset under ``root``; returns {video_id: {split, outcome, ...}}."""
    videos = root / "MSRVTT" / "videos" / "all"
    videos.mkdir(parents=True)
    gen = tmp / "generated"
    land = make_video(gen / "land.mp4", 320, 240, fps=25, seconds=4)
    cockatoo, realshort = find_sample_video("cockatoo.mp4"), find_sample_video("realshort.mp4")
    cases = {
        # real sample videos
        "bigbuckbunny": dict(split="train", src=sample_video("bigbuckbunny.mp4"), frames=16, size=(398, 224)),
        "bikes": dict(split="train", src=sample_video("bikes.mp4"), frames=30, size=(528, 224)),
        "carphone": dict(split="train", src=sample_video("carphone_pristine.mp4"), frames=12, size=(274, 224)),
        # Debian's python3-imageio videos where `make samples` could fetch them, else generated stand-ins
        "cockatoo": (dict(split="train", src=cockatoo, frames=42, size=(398, 224)) if cockatoo else
                     dict(split="train", src=make_video(gen / "hd.mp4", 1280, 720, fps=20, seconds=3, audio=True),
                          frames=9, size=(398, 224))),
        "realshort": dict(split="test", src=realshort or make_video(gen / "short.mp4", 320, 240, fps=30, seconds=1.2),
                          frames=4, size=(298, 224)),
        # generated awkward ones
        "portrait": dict(split="train", src=make_video(gen / "portrait.mp4", 240, 320, fps=30, seconds=2),
                         frames=6, size=(224, 298)),
        "odd": dict(split="train", src=make_video(gen / "odd.mp4", 333, 201, fps=25, seconds=2), frames=6),
        "rotated": dict(split="train", src=make_video(gen / "rot.mp4", 320, 240, fps=30, seconds=2, rotate=90),
                        frames=6, size=(224, 298)),
        "vfr": dict(split="train", src=make_vfr_video(gen / "vfr.mp4", seconds=4), frames=12),
        "one_second": dict(split="train", src=make_video(gen / "one.mp4", 320, 240, fps=25, seconds=1), frames=3),
        UNICODE_ID: dict(split="train", src=land, frames=12),
        "test_a": dict(split="test", src=make_video(gen / "ta.mp4", 320, 240, fps=25, seconds=3), frames=9),
        "test_b": dict(split="test", src=make_video(gen / "tb.mp4", 400, 240, fps=24, seconds=2), frames=6),
        # broken ones
        "truncated_real": dict(split="train", src=truncate(sample_video("bikes.mp4"), gen / "tr.mp4", 0.5),
                               bad="moov atom not found"),
        "zero_bytes": dict(split="train", src=truncate(land, gen / "zero.mp4", 0.0), bad="empty file"),
        "text_as_mp4": dict(split="train", src=write_text(gen / "text.mp4"), bad="not a video"),
        "audio_only": dict(split="train", src=make_audio_only(gen / "audio.mp4"), bad="no video stream"),
        "test_truncated": dict(split="test", src=truncate(land, gen / "tt.mp4", 0.5), bad="truncated"),
    }
    for vid, case in cases.items():
        shutil.copyfile(case["src"], videos / f"{vid}.mp4")

    ann = root / "msrvtt_data"
    ann.mkdir()
    train = [v for v, c in cases.items() if c["split"] == "train"]
    test = [v for v, c in cases.items() if c["split"] == "test"]
    sentences = [{"video_id": v, "caption": f"{v} clip number {j}", "sen_id": 2 * i + j}
                 for i, v in enumerate(train) for j in range(2)]
    sentences[0]["caption"] = HTML_EMOJI
    (ann / "MSRVTT_data.json").write_text(json.dumps({"sentences": sentences}, ensure_ascii=False), encoding="utf-8")
    for name in ("MSRVTT_train.9k.csv", "MSRVTT_train.7k.csv"):
        with open(ann / name, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["video_id"]] + [[v] for v in train])
    with open(ann / "MSRVTT_JSFUSION_test.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["key", "vid_key", "video_id", "sentence"]]
                                + [[f"ret{i}", f"msr{i}", v, f"the {v} test clip"] for i, v in enumerate(test)])
    return cases


def _config(raw: Path, allowed: list[str] | None = None) -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    # JPEG storage here (the demo uses raw): the per-dataset cache_storage wiring is exercised end to end too
    cfg["datasets"]["msrvtt"] = {"format": "msrvtt", "source": str(raw), "train_splits": ["9k"],
                                 "cache_storage": "jpeg"}
    if allowed is not None:
        cfg["datasets"]["msrvtt"]["allow_missing_test_videos"] = allowed
    cfg["only_experiments"] = [RUN]
    cfg["train"].update(batch_size=4)
    return quick_pretraining(cfg)


def _snakemake(workdir: Path, cfg: dict, *targets: str, check: bool = True) -> subprocess.CompletedProcess:
    path = workdir / f"config{len(list(workdir.glob('config*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return run_snakemake(*targets, "--cores", "2", "-d", workdir, "--configfile", path, check=check)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run 1 (a broken test video, not allowed) and run 2 (allowed) on the same working directory."""
    tmp = tmp_path_factory.mktemp("bad_input")
    raw = tmp / "raw"
    cases = _build_raw(raw, tmp)
    work = tmp / "work"
    work.mkdir()
    first = _snakemake(work, _config(raw), METRICS, check=False)
    data = work / "data" / "demo" / "msrvtt"
    state = {"first": first, "cache_mtime": (data / "frames.h5").stat().st_mtime_ns if (data / "frames.h5").exists()
             else None, "bad_after_first": (data / "bad_videos.tsv").read_text() if (data / "bad_videos.tsv").exists()
             else None, "checkpoint_after_first": (work / f"results/demo/runs/msrvtt/{RUN}/seed42/checkpoint.pt").exists(),
             "coverage_log": (work / "results/demo/logs/check_test_videos/msrvtt.log").read_text()}
    second = _snakemake(work, _config(raw, allowed=["test_truncated"]), METRICS, "results/demo/tables/table3.md")
    return dict(cases=cases, work=work, data=data, second=second, **state)


pytestmark = pytest.mark.slow


def test_unallowed_bad_test_video_stops_the_run_and_keeps_the_cache(pipeline):
    first = pipeline["first"]
    out = first.stdout + first.stderr
    assert first.returncode != 0
    log = pipeline["coverage_log"]
    assert "test_truncated" in log and "datasets.msrvtt.allow_missing_test_videos" in log and "truncated" in log
    assert "check_test_videos" in out  # the failing rule is named
    assert pipeline["cache_mtime"] is not None and pipeline["bad_after_first"] is not None  # kept, not deleted
    assert not pipeline["checkpoint_after_first"]  # nothing trained on an unchecked test set


def test_every_bad_video_is_listed_with_its_reason(pipeline):
    bad = read_bad_videos(pipeline["data"] / "bad_videos.tsv")
    expected = {v: c for v, c in pipeline["cases"].items() if "bad" in c}
    assert sorted(bad.video_id) == sorted(expected)
    for row in bad.itertuples():
        assert row.split == expected[row.video_id]["split"] and row.stage == "compress"
        assert expected[row.video_id]["bad"] in row.reason, (row.video_id, row.reason)
    cache = FrameCache(pipeline["data"] / "frames.h5")
    assert set(cache.missing) == set(expected)  # the cache records what it lacks, and why
    assert all(expected[v]["bad"] in reason for v, reason in cache.missing.items())


def test_awkward_videos_are_cached_with_the_expected_frames(pipeline):
    cache = FrameCache(pipeline["data"] / "frames.h5")
    assert cache.storage == "jpeg"
    good = {v: c for v, c in pipeline["cases"].items() if "bad" not in c}
    assert sorted(cache.video_ids) == sorted(good)  # nothing else lost
    shards = [r for p in sorted((pipeline["data"] / "compressed").glob("shard*.tsv"))
              for r in csv.DictReader(open(p, encoding="utf-8"), delimiter="\t")]
    sizes = {r["video_id"]: (int(r["width"]), int(r["height"])) for r in shards if r["status"] == "ok"}
    for vid, case in good.items():
        assert abs(cache.num_frames(vid) - case["frames"]) <= 1, (vid, cache.num_frames(vid))
        assert min(sizes[vid]) == 224 and sizes[vid][0] % 2 == 0 and sizes[vid][1] % 2 == 0
        if "size" in case:
            assert sizes[vid] == case["size"], (vid, sizes[vid])
    assert cache.read(UNICODE_ID, [0]).shape == (1, 224, 224, 3)
    # realshort (1.2 s real clip) has 4 frames: evaluation repeats the last one and masks the rest
    ds = VideoTextDataset(cache, [("realshort", "x")], num_frames=12, context_length=32, train=False)
    item = ds[0]
    assert item["video_mask"].tolist() == [True] * 4 + [False] * 8
    assert (item["video"][4:] == item["video"][3]).all()


def test_allowed_bad_test_video_is_left_out_and_said_so(pipeline):
    # allowing the missing video reran neither compression nor the cache
    assert (pipeline["data"] / "frames.h5").stat().st_mtime_ns == pipeline["cache_mtime"]
    assert (pipeline["data"] / "bad_videos.tsv").read_text() == pipeline["bad_after_first"]
    work = pipeline["work"]
    coverage = json.loads((pipeline["data"] / "test_coverage.json").read_text())
    assert coverage["missing_test_videos"] == ["test_truncated"] and not coverage["complete"]
    metrics = json.loads((work / METRICS).read_text())
    assert metrics["test_coverage"] == {"complete": False, "missing_test_videos": ["test_truncated"]}
    assert metrics["efficiency"]["n_test_videos"] == 3 and metrics["efficiency"]["n_test_texts"] == 3
    summary = json.loads((work / f"results/demo/runs/msrvtt/{RUN}/seed42/train_summary.json").read_text())
    bad_train = sorted(v for v, c in pipeline["cases"].items() if "bad" in c and c["split"] == "train")
    assert sorted(summary["train_videos_left_out"]) == bad_train
    good_train = [v for v, c in pipeline["cases"].items() if "bad" not in c and c["split"] == "train"]
    assert summary["train_pairs"] == 2 * len(good_train)
    log = (work / f"results/demo/logs/train/msrvtt/{RUN}/seed42.log").read_text()
    assert "training without video zero_bytes" in log
    table = (work / "results/demo/tables/table3.md").read_text()
    # the whole label: the incomplete test set first, then how the demo run departed from the paper's training
    assert re.search(r"ours \(1 seed; test set incomplete: 1 video missing; weights not OpenAI's \(sha256 "
                     r"[0-9a-f]{12}…\); global batch 4, paper 128; 1 epoch, paper 5\)", table), table

    # allowing one more video later reruns the check only, no training or evaluation
    raw = work.parent / "raw"
    plan = _snakemake(work, _config(raw, allowed=["test_truncated", "another"]), METRICS, "-n").stdout
    jobs = {parts[0]: parts[1] for parts in map(str.split, plan.splitlines())
            if len(parts) == 2 and parts[1].isdigit() and not parts[0].endswith(":")}  # the "Job stats" table
    assert jobs == {"check_test_videos": "1", "total": "1"}, plan[-2000:]


def test_html_and_emoji_caption_survive_to_the_tokens(pipeline):
    import pandas as pd

    manifest = pd.read_csv(pipeline["data"] / "manifest.csv", dtype=str, keep_default_na=False)
    assert HTML_EMOJI in set(manifest.caption)  # verbatim through json -> csv
    unescaped = 'a man & his dog 🐶 play <3 "fetch"'
    assert tokenize(HTML_EMOJI).tolist() == tokenize(unescaped).tolist()
    assert (tokenize(HTML_EMOJI) > 0).sum() > (tokenize(unescaped.replace(" 🐶", "")) > 0).sum()  # emoji kept


def test_empty_caption_stops_the_manifest_with_file_and_position(pipeline, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(pipeline["work"].parent / "raw" / "msrvtt_data", raw / "msrvtt_data")
    (raw / "MSRVTT" / "videos").mkdir(parents=True)
    (raw / "MSRVTT" / "videos" / "all").symlink_to(pipeline["work"].parent / "raw" / "MSRVTT" / "videos" / "all")
    data = json.loads((raw / "msrvtt_data" / "MSRVTT_data.json").read_text(encoding="utf-8"))
    data["sentences"][3]["caption"] = "   "
    (raw / "msrvtt_data" / "MSRVTT_data.json").write_text(json.dumps(data), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    proc = _snakemake(work, _config(raw), "data/demo/msrvtt/manifest.csv", check=False)
    assert proc.returncode != 0
    log = (work / "results/demo/logs/manifest/msrvtt.log").read_text()
    assert "MSRVTT_data.json: sentences[3]" in log and "empty caption" in log
    assert not (work / "data/demo/msrvtt/manifest.csv").exists()
