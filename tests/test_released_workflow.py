"""`snakemake results/paper/tables/released.md --configfile config/paper.yaml` as a user runs it.

Local HTTP servers on 127.0.0.1 hold MSR-VTT's and MSVD's archives in their real layouts and the four
released checkpoints of those datasets as generated zips in the original's layout (tests/released_zips.py);
a site file after config/paper.yaml points the workflow at them, as a user with mirrors would. LSMDC is
not placed, so its four rows must say why they did not run. Snakemake starts by its full path from a
plain shell (no environment activated).
"""

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from released_zips import hparams, tiny_clip, write_released_zip
from upstream import Upstream
from workflow_runner import run_snakemake

from centerclip.data.layouts import read_manifest
from centerclip.training.evaluate import evaluate_test_split
from centerclip.paper.released import load
from centerclip.training.settings import EvalSettings

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

SIZES = {"msrvtt": {"n_train": 8, "n_test": 4, "captions_per_video": 1},
         "msvd": {"n_train": 8, "n_val": 2, "n_test": 4, "captions_per_video": 1}}
# the MSVD stand-in trained with other frames and words than the others: the evaluation must use its own
OWN = {"eclip_msvd_22": {"max_frames": 8, "max_words": 24, "target_frames_blocks": [8] * 6 + [4] * 6}}
SERVED = ["eclip_msrvtt_62", "eclip_msrvtt_63", "eclip_msrvtt_80", "eclip_msvd_22"]


def snakemake(work, *args, timeout=1500):
    """From the repository root, targets before --configfile (config/paper.yaml, then the site file)."""
    return run_snakemake(*args, "-d", work, "--cores", "2", "--configfile", "config/paper.yaml", work / "site.yaml",
                         timeout=timeout)


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("released")
    work = tmp / "work"
    work.mkdir()
    with Upstream(tmp / "upstream", msrvtt=SIZES["msrvtt"], msvd=SIZES["msvd"], clip=()).build() as up:
        for i, cid in enumerate(SERVED):
            write_released_zip(up.root / "releases", cid, tiny_clip(seed=i).state_dict(), hparams(cid, **OWN.get(cid, {})))
        site = {"datasets": {d: up.mirror(d) for d in ("msrvtt", "msvd")},
                "released": {"mirror": up.server.url("/releases/") + "{id}.zip"},
                "preprocess": {"shards": 2, "threads": 2}, "eval": {"batch_size": 4}}
        (work / "site.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
        proc = snakemake(work, "results/paper/tables/released.md")
        out = proc.stdout + proc.stderr
        again = snakemake(work, "results/paper/tables/released.md", "-n", timeout=300)
        return {"work": work, "out": out, "again": again.stdout + again.stderr,
                "zips": {cid: up.root / "releases" / f"{cid}.zip" for cid in SERVED}}


def test_each_served_checkpoint_ran_and_lsmdc_says_why_not(released):
    work = released["work"]
    rows = {r["checkpoint"]: r for r in csv.DictReader(open(work / "results/paper/tables/released.csv"))}
    assert len(rows) == 8
    for cid in SERVED:
        m = json.loads((work / "results/paper/released" / cid / "metrics.json").read_text())
        r = rows[cid]
        assert float(r["t2v_R1_ours"]) == m["t2v"]["R1"] and float(r["v2t_R1_ours"]) == m["v2t"]["R1"]
        assert float(r["t2v_R1_diff"]) == pytest.approx(m["t2v"]["R1"] - float(r["t2v_R1_authors"]), abs=0.006)
        assert m["efficiency"]["n_test_videos"] == SIZES[r["dataset"]]["n_test"]
    assert rows["eclip_msrvtt_62"]["t2v_R1_authors"] == "44.1" and rows["eclip_msvd_22"]["v2t_R1_authors"] == "61.4"
    for cid in (c for c in rows if "lsmdc" in c):
        assert rows[cid]["status"] == "not run" and "lsmdc not provided" in rows[cid]["note"]
    md = (work / "results/paper/tables/released.md").read_text()
    assert md.count("not run: lsmdc not provided") == 4
    assert md.count("test set of 4 videos, the original's has") == 4  # twins are small: said, not hidden
    assert "k-medoids++ (B6 − 6, 49; L1 distance)" in md  # eclip_msrvtt_62's setting, read from its hparams
    assert "Nothing to be done" in released["again"] or "nothing to be done" in released["again"].lower()


def test_each_checkpoint_was_evaluated_with_its_own_frames_and_words(released):
    work = released["work"]
    msvd = json.loads((work / "results/paper/released/eclip_msvd_22/metrics.json").read_text())
    assert msvd["eval_settings"] == {"num_frames": 8, "context_length": 24}
    msrvtt = json.loads((work / "results/paper/released/eclip_msrvtt_80/metrics.json").read_text())
    assert msrvtt["eval_settings"] == {"num_frames": 12, "context_length": 32}
    assert msrvtt["checkpoint"]["sha256"] and msrvtt["hparams"]["cluster_algo"] == "kmediods++"
    # the workflow's number is the model of that very zip on that very test cache
    model, info = load(released["zips"]["eclip_msrvtt_80"])
    data = work / "data/paper/msrvtt/test_only"
    again = evaluate_test_split(model, data / "manifest.csv", data / "frames.h5",
                                EvalSettings(info["max_frames"], info["max_words"], 4), torch.device("cpu"))
    assert again["t2v"] == msrvtt["t2v"] and again["v2t"] == msrvtt["v2t"]


def test_only_the_test_videos_were_compressed_and_cached(released):
    work = released["work"]
    for dataset in ("msrvtt", "msvd"):
        root = work / "data/paper" / dataset
        full = read_manifest(root / "manifest.csv")
        test_ids = set(full[full.split == "test"].video_id)
        assert len(test_ids) == SIZES[dataset]["n_test"] and len(set(full.video_id)) > len(test_ids)
        assert {p.stem for p in (root / "videos_3fps").glob("*.mp4")} == test_ids
        assert set(read_manifest(root / "test_only" / "manifest.csv").video_id) == test_ids
        assert (root / "test_only" / "frames.h5").is_file() and not (root / "frames.h5").exists()
    assert not (work / "results/paper/runs").exists()  # nothing trained


def test_the_downloads_were_recorded_and_are_verified_next_time(released):
    digests = (released["work"] / "data/paper/download_digests.tsv").read_text()
    for cid in SERVED:
        assert f"/releases/{cid}.zip" in digests
