"""The full reproduction as a user drives it: `snakemake --profile cluster` with the paper config itself.

What a user with mirrors edits, and nothing else, goes into a small site file after config/paper.yaml:
mirror URLs for MSR-VTT, MSVD and the CLIP weights, a smaller global batch (with gradient accumulation)
and epoch scale, fewer compression shards for tiny data, and `only_experiments` (one run per dataset).
Local HTTP servers on 127.0.0.1 hold MSR-VTT's and MSVD's archives in their real layouts and real-size
ViT-B/32 and ViT-B/16 OpenAI-layout TorchScript archives (random weights; their digests given as a private
mirror's would be). LSMDC and ActivityNet twins are placed exactly where the workflow's own message says;
the ActivityNet twin's split lists (twins of the original code's train_ids.json, val_ids.json, video_path.json,
which decide the membership) are served as a mirror of the original's, with their digests, and downloaded.
Every job goes through sbatch on the single-node SLURM of .ci/slurm.sh, with the user's profile
(cluster/config.yaml) plus the CI overlay (.ci/cluster-overlay.yaml) filling its placeholders. Snakemake
is started by its full path from a plain shell: no environment activated.
"""

import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from test_slurm import cluster_env, completed_jobs_by_rule, slurm  # noqa: F401 - fixtures
from upstream import Upstream
from workflow_runner import CLUSTER_VENV_BIN, run_snakemake

from centerclip.data.activitynet import ACTIVITYNET_LISTS_DIR
from centerclip.data.layouts import read_manifest
from centerclip.data.synthetic.twins import make_activitynet_twin, make_lsmdc_twin

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

#: One run per dataset: both backbones, k-medoids and spectral CenterCLIP, the meanP baseline.
RUNS = {
    "msvd": "msvd_b16_meanP",              # Table 1, ViT-B/16
    "activitynet": "anet_b32_km_B6-12-49",  # Table 2, 60 frames
    "msrvtt": "msrvtt9k_b32_km_B6-4-49",    # Table 3
    "lsmdc": "lsmdc_b32_sp_B6-4-49",        # Table 4, spectral
}
TABLES = {"msvd": "table1", "activitynet": "table2", "msrvtt": "table3", "lsmdc": "table4"}
# twin sizes: 8 training pairs each (one optimiser step of a global batch of 8), a few test videos
SIZES = {"msrvtt": {"n_train": 8, "n_test": 4, "captions_per_video": 1},
         "msvd": {"n_train": 8, "n_val": 2, "n_test": 4, "captions_per_video": 1}}
GATED_TWINS = {"lsmdc": (make_lsmdc_twin, {"n_train": 8, "n_val": 2, "n_test": 4, "seed": 5}),
               "activitynet": (make_activitynet_twin, {"n_train": 8, "n_test": 4, "seed": 6})}
TEST_VIDEOS = {"msrvtt": 4, "msvd": 4, "lsmdc": 4, "activitynet": 4}


def merge(base: dict, overlay: dict) -> dict:
    """``overlay`` onto ``base``, recursively; a None in ``overlay`` removes the key."""
    out = dict(base)
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def ci_profile(tmp: Path) -> Path:
    """cluster/config.yaml with the CI overlay: a profile folder named `cluster`, as the user's."""
    user = yaml.safe_load((REPO / "cluster" / "config.yaml").read_text())
    assert user["configfile"] == "config/paper.yaml"  # `snakemake --profile cluster` is the full reproduction
    placeholders = {user["default-resources"]["slurm_account"], user["default-resources"]["slurm_partition"],
                    user["set-resources"]["train"]["gpu_model"]}
    assert placeholders == {"YOUR_ACCOUNT", "YOUR_PARTITION", "YOUR_GPU_MODEL"}
    profile = merge(user, yaml.safe_load((REPO / ".ci" / "cluster-overlay.yaml").read_text()))
    assert not {str(v) for v in json.dumps(profile).split('"')} & placeholders  # every placeholder filled
    folder = tmp / "profile" / "cluster"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def snakemake(env, work, profile, *args, timeout=1800, check=True):
    """The cluster venv's `snakemake`, from the repository root as the README says, targets before
    --configfile (config/paper.yaml first, then the user's site file)."""
    return run_snakemake(*args, "--profile", profile, "-d", work, "--configfile", "config/paper.yaml",
                         work / "site.yaml", env=env, venv_bin=CLUSTER_VENV_BIN, timeout=timeout, check=check)


def place_where_the_message_says(log: str, dataset: str, twin_root: Path, root: Path) -> list[Path]:
    """Copy the twin's files to exactly the absolute paths the acquire job listed as missing."""
    listed = [Path(p) for p in re.findall(r"^\s+(/\S+)\s", log, flags=re.M)]
    listed = [p for p in listed if root.resolve() in p.parents]
    assert listed, f"the {dataset} message lists no path under {root}:\n{log}"
    for dst in listed:
        src = twin_root / dst.relative_to(root.resolve())
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    return listed


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    up = Upstream(tmp_path_factory.mktemp("upstream"), msrvtt=SIZES["msrvtt"], msvd=SIZES["msvd"],
                  clip=("ViT-B/32", "ViT-B/16")).build()
    with up:
        yield up


@pytest.fixture(scope="module")
def reproduction(slurm, cluster_env, upstream, tmp_path_factory):  # noqa: F811
    tmp = tmp_path_factory.mktemp("reproduction")
    work = tmp / "work"
    work.mkdir()
    profile = ci_profile(tmp)
    twins = {dataset: tmp / "twins" / dataset for dataset in GATED_TWINS}
    for dataset, (make_twin, sizes) in GATED_TWINS.items():
        make_twin(twins[dataset], threads=2, **sizes)
    site = {
        "datasets": {**{d: upstream.mirror(d) for d in ("msrvtt", "msvd")},
                     # the original code's ActivityNet lists: the twin's, from a mirror (with their digests)
                     "activitynet": upstream.activitynet_lists(twins["activitynet"] / ACTIVITYNET_LISTS_DIR)},
        "backbones": {"ViT-B/32": {"pretrained": "data/paper/models/ViT-B-32.pt", **upstream.backbone("ViT-B/32")},
                      "ViT-B/16": {"pretrained": "data/paper/models/ViT-B-16.pt", **upstream.backbone("ViT-B/16")}},
        "train": {"batch_size": 8, "grad_accum": 4},   # global batch 8 = 4 micro-batches of 2 videos
        "eval": {"batch_size": 4},
        "scale": {"epochs": 0.1},                       # 5 -> 1 epoch, ActivityNet 8 -> 1
        "preprocess": {"shards": 2, "threads": 2},      # tiny datasets: 2 compression jobs each, not 64
        "only_experiments": list(RUNS.values()),
    }
    (work / "site.yaml").write_text(yaml.safe_dump(site, sort_keys=False))

    # the gated datasets: ask the workflow where their files go, put the twins' files exactly there
    placed = {}
    for dataset in GATED_TWINS:
        target = f"data/paper/{dataset}/raw.ready"
        proc = snakemake(cluster_env, work, profile, target, "--executor", "local", "--cores", "1", timeout=300,
                         check=False)
        log = (work / "results" / "paper" / "logs" / "acquire" / f"{dataset}.log").read_text()
        assert proc.returncode != 0 and "Put them here:" in log, proc.stdout[-2000:] + proc.stderr[-2000:]
        placed[dataset] = place_where_the_message_says(log, dataset, twins[dataset],
                                                       work / "data" / "paper" / "raw" / dataset)

    targets = [f"results/paper/tables/{t}.md" for t in TABLES.values()]
    proc = snakemake(cluster_env, work, profile, *targets)
    out = proc.stdout + proc.stderr
    again = snakemake(cluster_env, work, profile, *targets, "-n", timeout=300)
    return {"work": work, "out": out, "again": again.stdout + again.stderr, "placed": placed, "profile": profile,
            "twins": twins}


def test_every_job_went_through_sbatch_and_completed(reproduction, cluster_env):  # noqa: F811
    out = reproduction["out"]
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert ids and len(ids) == len(set(ids))
    rules = completed_jobs_by_rule(ids, cluster_env)
    assert rules.get("train") == rules.get("evaluate") == 4, rules
    assert rules.get("download_clip") == 2 and rules.get("acquire") == 4 and rules.get("frame_cache") == 4, rules
    assert rules.get("download_lists") == 1, rules  # ActivityNet's lists of the original code
    assert "Nothing to be done" in reproduction["again"], reproduction["again"][-3000:]
    # one CPU per job (.ci/cluster-overlay.yaml): SLURM ran jobs two at a time
    spans = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%S|%e", "--jobs", ",".join(ids)],
                           env=cluster_env, capture_output=True, text=True, check=True).stdout.split()
    spans = sorted(tuple(datetime.fromisoformat(t) for t in line.split("|")) for line in spans)
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans


def test_data_arrived_whole(reproduction, upstream):
    work = reproduction["work"]
    for dataset in RUNS:
        manifest = read_manifest(work / "data" / "paper" / dataset / "manifest.csv")
        test = manifest[manifest.split == "test"].video_id.nunique()
        assert test == TEST_VIDEOS[dataset], (dataset, test)
        assert (work / "data" / "paper" / dataset / "frames.h5").is_file()
        coverage = json.loads((work / "data" / "paper" / dataset / "test_coverage.json").read_text())
        assert not coverage.get("missing_test_videos"), coverage
    # downloads verified and kept where the workflow's data lives, not in the repository's config/
    digests = (work / "data" / "paper" / "download_digests.tsv").read_text()
    assert upstream.mirror("msrvtt")["mirror"]["videos"] in digests
    assert not (REPO / "config" / "download_digests.tsv").exists()
    for dataset in GATED_TWINS:  # the message listed the LSMDC val file as optional; everything else needed
        assert reproduction["placed"][dataset]


def test_activitynet_holds_the_original_codes_membership(reproduction):
    """Train and test videos are exactly id list ∩ caption file ∩ video_path.json (ids without v_) minus
    v_NHznDFD3V3k, from the lists the workflow downloaded (never placed), and the record says what was left out."""
    work, twin = reproduction["work"], reproduction["twins"]["activitynet"]
    data = work / "data" / "paper" / "activitynet"
    assert not (work / "data" / "paper" / "raw" / "activitynet" / ACTIVITYNET_LISTS_DIR).exists()  # not placed
    for name in ("train_ids.json", "val_ids.json", "video_path.json"):  # downloaded from the mirror
        assert (data / ACTIVITYNET_LISTS_DIR / name).read_bytes() == (twin / ACTIVITYNET_LISTS_DIR / name).read_bytes()
    had = json.loads((data / ACTIVITYNET_LISTS_DIR / "video_path.json").read_text())
    manifest = read_manifest(data / "manifest.csv")
    record = json.loads((data / "manifest_left_out.json").read_text())
    for split, ids_file, captions_file in (("train", "train_ids.json", "train.json"),
                                           ("test", "val_ids.json", "val_1.json")):
        ids = json.loads((data / ACTIVITYNET_LISTS_DIR / ids_file).read_text())
        captioned = json.loads((twin / "annotations" / captions_file).read_text())
        expected = [v for v in ids if v in captioned and v[2:] in had and v != "v_NHznDFD3V3k"]
        assert manifest[manifest.split == split].video_id.tolist() == expected
        assert set(captioned) - set(expected) and set(ids) - set(expected)  # both lists hold more
        assert record[split]["kept"] == len(expected)
        assert sum(record[split]["left_out"].values()) == len((set(ids) | set(captioned)) - set(expected))
    assert TEST_VIDEOS["activitynet"] == len(expected) and "v_NHznDFD3V3k" in ids and "v_NHznDFD3V3k" in captioned
    log = (work / "results" / "paper" / "logs" / "manifest" / "activitynet.log").read_text()
    assert len([line for line in log.splitlines() if "the original code's membership" in line]) == 1
    run = work / "results" / "paper" / "runs" / "activitynet" / RUNS["activitynet"] / "seed42"
    assert json.loads((run / "metrics.json").read_text())["efficiency"]["n_test_videos"] == len(expected)


def test_runs_trained_real_size_and_recorded_their_weights(reproduction, upstream):
    work = reproduction["work"]
    for dataset, experiment in RUNS.items():
        run = work / "results" / "paper" / "runs" / dataset / experiment / "seed42"
        summary = json.loads((run / "train_summary.json").read_text())
        metrics = json.loads((run / "metrics.json").read_text())
        assert summary["steps"] >= 1 and summary["global_batch"] == 8 and summary["epochs"] == 1
        backbone = "ViT-B/16" if "_b16_" in experiment else "ViT-B/32"
        assert metrics["weights"]["sha256"] == upstream.clip(backbone).sha256
        assert metrics["weights"]["openai"] is None  # random weights: not OpenAI's release
        config = yaml.safe_load((run / "run.yaml").read_text())
        assert config["label"] == "paper" and config["model"] == {
            "pretrained": f"data/paper/models/{backbone.replace('/', '-')}.pt", **upstream.backbone(backbone)}
        for key in ("R1", "R5", "MdR"):
            assert key in metrics["t2v"] and key in metrics["v2t"]


def test_tables_show_the_runs_and_say_how_they_departed(reproduction, upstream):
    work = reproduction["work"]
    for dataset, table in TABLES.items():
        md = (work / "results" / "paper" / "tables" / f"{table}.md").read_text()
        assert "our reproduction (paper)" in md and "DEMO" not in md
        ours = [line for line in md.splitlines() if "| ours (1 seed" in line]
        assert len(ours) == 1, md  # the one run of this dataset
        assert "weights not OpenAI's" in ours[0] and "global batch 8, paper 128" in ours[0], ours[0]
        paper_epochs = 8 if dataset == "activitynet" else 5
        assert f"1 epoch, paper {paper_epochs}" in ours[0], ours[0]
        assert "left out by only_experiments in the config" in md


def test_nothing_went_into_the_demo(reproduction):
    work = reproduction["work"]
    assert not (work / "results" / "demo").exists() and not (work / "data" / "demo").exists()
    assert "synthetic" not in reproduction["out"]
    runs = sorted(p.relative_to(work).as_posix() for p in work.glob("results/*/runs/*/*/seed*"))
    assert runs == sorted(f"results/paper/runs/{d}/{e}/seed42" for d, e in RUNS.items())
