"""The Snakemake workflow: config validation, the job graph, lint, and the demo end to end (tiny)."""

import copy
import json
import sys
from pathlib import Path

import pytest
import yaml
from demo_config import tiny_demo_config
from workflow_runner import run_snakemake

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "rules"))  # the workflow's config code lives beside its rules
from workflow_config import (  # noqa: E402
    ConfigError, load_experiments, load_released_list, run_yaml_contents, validate_config)


@pytest.fixture(scope="module")
def demo_config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_demo_config_is_valid(demo_config):
    validate_config(demo_config)
    experiments, defaults, _ = load_experiments(demo_config)
    # the paper's 68 runs, and beyond it one fine-tuned ToMe run and 13 training-free runs
    assert len(experiments) == 82 and defaults["activitynet"]["frames"] == 60
    assert sum(1 for exp in experiments.values() if "training_free" in exp) == 13


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["train"].__setitem__("epochz", 3), r"unknown key \['epochz'\] under train"),
    (lambda c: c["train"].__setitem__("batch_size", "eight"), r"key train.batch_size: 'eight' is not of type 'integer'"),
    (lambda c: c["datasets"]["msrvtt"].__setitem__("format", "msrvt"), r"key datasets.msrvtt.format"),
    (lambda c: c["preprocess"].__setitem__("fps", -3), r"key preprocess.fps"),
])
def test_config_errors_name_the_key(demo_config, mutate, message):
    bad = copy.deepcopy(demo_config)
    mutate(bad)
    with pytest.raises(ConfigError, match=message):
        validate_config(bad)


def _pretrain_from(config, start):
    config["backbones"]["ViT-B/16"]["pretrain"]["init_from"] = start


@pytest.mark.parametrize("mutate,message", [
    # a mirror/digest would be ignored for a file the workflow does not download
    (lambda c: c["backbones"]["ViT-B/32"].update(mirror="https://example.org/x.pt"),
     r"^config: backbones.ViT-B/32 sets mirror/sha256, but its pretrained file 'data/demo/models/tiny-vit-b32.pt' "
     r"is not one the workflow downloads; set pretrained to data/demo/models/ViT-B-32.pt or "
     r"data/demo/models/ViT-B-16.pt, or drop mirror/sha256 and place the file$"),
    # a backbone the workflow pretrains must not be written outside <data_dir>/models/ ...
    (lambda c: c["backbones"]["ViT-B/32"].update(pretrained="elsewhere/tiny-vit-b32.pt"),
     r"^config: backbones.ViT-B/32 has `pretrain:`, so the workflow writes its pretrained file; set pretrained to "
     r"a file under data/demo/models other than OpenAI's ViT-B-32.pt and ViT-B-16.pt "
     r"\(got 'elsewhere/tiny-vit-b32.pt'\)$"),
    # ... nor over the file of OpenAI's weights
    (lambda c: c["backbones"]["ViT-B/32"].update(pretrained="data/demo/models/ViT-B-32.pt"),
     r"backbones.ViT-B/32 has `pretrain:`.* \(got 'data/demo/models/ViT-B-32.pt'\)$"),
    (lambda c: _pretrain_from(c, "ViT-B/99"),
     r"^config: backbones.ViT-B/16.pretrain.init_from = 'ViT-B/99' is not a backbone with `pretrain:` "
     r"\(ViT-B/32, ViT-B/16\)$"),
])
def test_backbone_files_are_checked_by_validation(demo_config, mutate, message):
    bad = copy.deepcopy(demo_config)
    mutate(bad)
    with pytest.raises(ConfigError, match=message):
        validate_config(bad)


def test_a_mirror_of_a_downloaded_clip_file_is_valid(demo_config):
    cfg = copy.deepcopy(demo_config)
    cfg["backbones"]["OpenAI"] = {"pretrained": "data/demo/models/ViT-B-32.pt", "mirror": "https://example.org/b32.pt",
                                  "sha256": "0" * 64}
    validate_config(cfg)


def test_released_checkpoint_list_errors_are_config_errors(tmp_path):
    assert load_released_list({}) is None
    (tmp_path / "list.yaml").write_text("url: https://example.org/no-id.zip\ncheckpoints: {a: {}}\n")
    with pytest.raises(ConfigError, match=r"list.yaml: url must be a pattern containing \{id\}"):
        load_released_list({"released": {"checkpoints": str(tmp_path / "list.yaml")}})


@pytest.mark.parametrize("mutate,message", [
    (lambda c, e: c["backbones"].pop("ViT-B/16"), r"backbone = 'ViT-B/16' is not under the config's backbones"),
    (lambda c, e: c["datasets"].pop("lsmdc"), r"dataset = 'lsmdc' is not under the config's datasets"),
    (lambda c, e: e["experiments"]["msvd_b32_meanP"].__setitem__("method", "meanp"),
     r"key experiments.msvd_b32_meanP.method"),
    (lambda c, e: e["experiments"]["msvd_b32_km_B6-4-49"]["stages"][0].__setitem__("segments", 5), r"does not divide"),
    (lambda c, e: e["experiments"]["msvd_b32_km_B6-4-49"]["stages"][0].__setitem__("block", 12), r"12 blocks"),
    (lambda c, e: c.__setitem__("only_experiments", ["nope"]), r"only_experiments names \['nope'\]"),
    (lambda c, e: e["dataset_defaults"].pop("msvd"), r"experiments\.msvd_\S+\.dataset = 'msvd' has no entry under "
                                                     r"dataset_defaults: give its frames, context_length, lr"),
    (lambda c, e: e["dataset_defaults"]["msvd"].pop("lr"), r"key dataset_defaults.msvd: 'lr' is a required property"),
])
def test_experiment_table_errors_name_file_and_key(demo_config, tmp_path, mutate, message):
    cfg = copy.deepcopy(demo_config)
    table = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text())
    mutate(cfg, table)
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(table))
    cfg["experiments"] = str(tmp_path / "experiments.yaml")
    with pytest.raises(ConfigError, match=message):
        load_experiments(cfg)


def test_run_yaml_contents_precedence_and_demo_scaling(demo_config):
    experiments, defaults, _ = load_experiments(demo_config)
    rc = run_yaml_contents(demo_config, experiments, defaults, "anet_b32_meanP_lr5e-6_e5", 7)
    assert rc["train"]["lr"] == pytest.approx(5e-6 * 20) and rc["train"]["epochs"] == 1  # 5 x 0.2
    assert rc["train"]["num_frames"] == rc["eval"]["num_frames"] == 60 and rc["train"]["context_length"] == 77
    assert rc["train"]["seed"] == 7 and rc["reduction"] == {"method": "meanP"}
    rc = run_yaml_contents(demo_config, experiments, defaults, "anet_b32_km_B6-15-49_N30", 42)
    assert rc["train"]["num_frames"] == 30 and rc["train"]["epochs"] == 2  # 8 x 0.2 rounded
    rc = run_yaml_contents(demo_config, experiments, defaults, "msrvtt7k_b32_meanP", 42)
    assert rc["manifest"].endswith("msrvtt/manifest_7k.csv")
    assert run_yaml_contents(demo_config, experiments, defaults, "msrvtt9k_b32_meanP", 42)["manifest"].endswith(
        "msrvtt/manifest.csv")
    rc = run_yaml_contents(demo_config, experiments, defaults, "msvd_b16_km_B6-4-160", 42)
    assert rc["model"]["pretrained"] == "data/demo/models/tiny-vit-b16.pt"  # written by the demo's pretraining
    assert rc["model"]["pretrain"]["architecture"]["vision_patch_size"] == 16
    assert rc["reduction"]["stages"][0]["clusters"] == 160


def dry_run_jobs(out: str) -> dict[str, int]:
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    return jobs


def test_dry_run_lists_the_demo_jobs(tmp_path):
    out = run_snakemake("-n", "--cores", "1", "-d", tmp_path, "--configfile", REPO / "config/config.yaml").stdout
    jobs = dry_run_jobs(out)
    assert jobs["train"] == 69 and jobs["evaluate"] == 82 and jobs["table"] == 10  # Tables 1-9 and beyond
    assert jobs["training_free_checkpoint"] == 13  # not trained: another run's weights
    assert jobs["acquire"] == 4 and jobs["frame_cache"] == 4 and jobs["manifest_split"] == 1
    assert jobs["figure3"] == jobs["figure4"] == jobs["figure5"] == jobs["tradeoff"] == 1
    assert jobs["pretrain_backbone"] == 2  # each tiny backbone pretrained once, before any run
    assert jobs["search_demo"] == 1 and jobs["total"] == 359  # the search check of the config's search_demo


def test_search_demo_is_skipped_when_its_run_is_not_run(tmp_path, demo_config):
    cfg = copy.deepcopy(demo_config)
    cfg["only_experiments"] = ["msrvtt9k_b32_meanP"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    jobs = dry_run_jobs(run_snakemake("-n", "--cores", "1", "-d", tmp_path, "--configfile",
                                      tmp_path / "config.yaml").stdout)
    assert jobs["train"] == 1 and "search_demo" not in jobs


@pytest.mark.parametrize("table,trains", [("table1", 7), ("table3", 14), ("table6", 3), ("table8", 4), ("table9", 3),
                                          ("beyond", 5)])
def test_one_table_builds_only_its_runs(tmp_path, table, trains):
    # targets before --configfile, which takes several values
    out = run_snakemake(f"results/demo/tables/{table}.md", "-n", "--cores", "1", "-d", tmp_path,
                        "--configfile", REPO / "config/config.yaml").stdout
    assert dry_run_jobs(out)["train"] == trains


def test_lint_is_clean():
    proc = run_snakemake("--lint")
    out = proc.stdout + proc.stderr
    assert "Congratulations" in out and "Lint for" not in out


def test_misspelt_config_key_stops_with_its_name(tmp_path, demo_config):
    bad = copy.deepcopy(demo_config)
    bad["preprocess"]["fsp"] = 3
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = run_snakemake("-n", "--cores", "1", "-d", tmp_path, "--configfile", tmp_path / "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "unknown key ['fsp'] under preprocess" in proc.stdout + proc.stderr


TINY_RUNS = ["msrvtt9k_b32_meanP", "msrvtt9k_b32_km_B6-4-49", "msrvtt7k_b32_meanP"]


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path):
    """The demo pipeline, shrunk to three runs: videos -> ffmpeg -> HDF5 -> trainings -> metrics ->
    all nine tables and the one beyond the paper (unrun rows marked) and the four figures."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(tiny_demo_config(TINY_RUNS, n_train=12, n_test=6)))
    run_snakemake("--cores", "2", "-d", tmp_path, "--configfile", tmp_path / "config.yaml")

    table = (tmp_path / "results/demo/tables/table3.md").read_text()
    assert "demo" in table.lower() and "not run" in table
    csv = (tmp_path / "results/demo/tables/table3.csv").read_text()
    assert "baseline (CLIP4clip (meanP), ViT-B/32)" in csv
    for n in range(1, 10):
        tex = (tmp_path / f"results/demo/tables/table{n}.tex").read_text()
        assert tex.count("\\begin{tabular}") == (2 if n == 3 else 1)  # Table 3 = sub-tables (a) 7K, (b) 9K
    assert "Results beyond the paper" in (tmp_path / "results/demo/tables/beyond.md").read_text()
    for fig in ("figure3", "figure4", "figure5", "tradeoff"):
        assert (tmp_path / f"results/demo/figures/{fig}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tmp_path / f"results/demo/figures/{fig}.pdf").read_bytes()[:4] == b"%PDF"
    assert (tmp_path / "data/demo/msrvtt/bad_videos.tsv").read_text().startswith("video_id\tsplit")
    assert (tmp_path / "data/demo/msrvtt/manifest_7k.csv").exists()
    for exp in TINY_RUNS:
        run = tmp_path / "results/demo/runs/msrvtt" / exp / "seed42"
        assert (run / "metrics.json").exists() and (run / "checkpoint.pt").exists()
    assert not (tmp_path / "data/demo/lsmdc").exists()  # nothing built that no target needs
    # the search check: the run's raw test videos indexed by centerclip-search, its test captions queried
    search = tmp_path / "results/demo/search"
    recall = json.loads((search / "recall.json").read_text())
    run_t2v = json.loads((tmp_path / "results/demo/runs/msrvtt/msrvtt9k_b32_km_B6-4-49/seed42/metrics.json")
                         .read_text())["t2v"]
    assert (recall["t2v_R1"], recall["t2v_R5"]) == (run_t2v["R1"], run_t2v["R5"]) and recall["equal"], recall
    assert recall["n_videos"] == recall["n_queries"] == 6  # the tiny twin's test videos, one caption each
    import h5py
    import pandas as pd

    manifest = pd.read_csv(tmp_path / "data/demo/msrvtt/manifest.csv", dtype=str)
    test_videos = sorted(f"{v}.mp4" for v in set(manifest[manifest.split == "test"].video_id))
    with h5py.File(search / "index.h5") as index:  # every test video, none failed
        assert sorted(p.decode() for p in index["videos/path"][()]) == test_videos and len(test_videos) == 6
        assert len(index["failed/path"]) == 0
    assert "<video" in (search / "queries.html").read_text()
    run_snakemake("--report", tmp_path / "report.html", "-d", tmp_path, "--configfile", tmp_path / "config.yaml")
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "table3.md" in html and "figure5.png" in html
    again = run_snakemake("-n", "--cores", "1", "-d", tmp_path, "--configfile", tmp_path / "config.yaml").stdout
    assert "Nothing to be done" in again


@pytest.mark.parametrize("table,trains", [("table1", 7), ("table3", 14), ("table4", 0), ("table2", 0)])
def test_paper_config_dry_run_per_table(tmp_path, table, trains):
    """The full reproduction's DAG: public datasets are downloaded and trained; LSMDC and
    ActivityNet are licence-gated and, until their files are placed, their rows are 'not run'."""
    out = run_snakemake(f"results/paper/tables/{table}.md", "-n", "--cores", "1", "-d", tmp_path,
                        "--configfile", REPO / "config/paper.yaml").stdout
    jobs = dry_run_jobs(out)
    assert jobs.get("train", 0) == trains
    if trains:
        assert jobs["download_clip"] >= 1 and "synthetic" not in out  # the demo config is not merged in


def test_paper_config_plans_every_public_run(tmp_path):
    out = run_snakemake("-n", "--cores", "1", "-d", tmp_path, "--configfile", REPO / "config/paper.yaml").stdout
    jobs = dry_run_jobs(out)
    assert jobs["train"] == 29 and jobs["download_clip"] == 2 and jobs["acquire"] == 2 and jobs["table"] == 10
    assert jobs["evaluate"] == 42 and jobs["training_free_checkpoint"] == 13 and jobs["tradeoff"] == 1
    assert "search_demo" not in jobs and jobs["total"] == 309  # the search check is the demo's only


def test_the_schema_owns_the_defaults_and_validation_fills_them(demo_config):
    cfg = copy.deepcopy(demo_config)
    for key in ("compression", "jpeg_quality", "cache_storage"):
        cfg["preprocess"].pop(key, None)
    cfg.pop("job_threads")
    validate_config(cfg)
    assert (cfg["preprocess"]["compression"], cfg["preprocess"]["jpeg_quality"], cfg["preprocess"]["cache_storage"],
            cfg["job_threads"]) == ("ours", 90, "raw", 2)
    given = copy.deepcopy(demo_config)
    validate_config(given)
    assert given["job_threads"] == demo_config["job_threads"] == 1  # a value the config sets is kept


def test_a_config_without_train_and_eval_sections_gives_complete_runs(demo_config):
    """Every training and evaluation setting a run reads has its default in the schema, and nowhere else:
    run.yaml is complete, and the library's settings classes (which have no defaults) accept it."""
    from dataclasses import fields

    from centerclip.training.settings import EvalSettings, RunConfig, TrainSettings

    cfg = copy.deepcopy(demo_config)
    for key in ("train", "eval", "scale"):
        cfg.pop(key)
    validate_config(cfg)
    experiments, defaults, _ = load_experiments(cfg)
    rc = run_yaml_contents(cfg, experiments, defaults, "msrvtt9k_b32_km_B6-4-49", 42)
    assert set(rc["train"]) == {f.name for f in fields(TrainSettings)}
    assert set(rc["eval"]) == {f.name for f in fields(EvalSettings)}
    run = RunConfig.from_dict(rc)
    # Section 4.1: global batch 128, warm-up over 10% of the steps, AdamW weight decay 0.2; lr and epochs unscaled
    assert (run.train.batch_size, run.train.warmup_fraction, run.train.weight_decay) == (128, 0.1, 0.2)
    assert (run.train.lr, run.train.epochs, run.train.grad_accum, run.eval.batch_size) == (5e-6, 5, 1, 32)
    lacking = copy.deepcopy(rc)
    del lacking["train"]["grad_accum"]
    with pytest.raises(ValueError, match=r"section 'train': lacks grad_accum \(the workflow's run_yaml rule"):
        RunConfig.from_dict(lacking)
    lacking["train"]["grad_acum"] = 2
    with pytest.raises(ValueError, match=r"lacks grad_accum; unknown grad_acum"):
        RunConfig.from_dict(lacking)


def test_a_required_dataset_that_is_missing_stops_the_workflow(tmp_path):
    """`required: true`: a gated dataset whose files are not placed stops the plan with the reason, instead of
    leaving its rows "not run" (the default)."""
    (tmp_path / "required.yaml").write_text(yaml.safe_dump({"datasets": {"lsmdc": {"required": True}}}))
    target = "results/paper/tables/table4.md"
    proc = run_snakemake(target, "-n", "--cores", "1", "-d", tmp_path, "--configfile",
                         REPO / "config/paper.yaml", tmp_path / "required.yaml", check=False)
    assert proc.returncode != 0
    assert "datasets.lsmdc.required is true, but lsmdc not provided" in proc.stdout + proc.stderr
    # the target that lists what to place still plans (the check is not made at parse time)
    run_snakemake("data/paper/lsmdc/raw.ready", "-n", "--cores", "1", "-d", tmp_path, "--configfile",
                  REPO / "config/paper.yaml", tmp_path / "required.yaml")
    run_snakemake(target, "-n", "--cores", "1", "-d", tmp_path, "--configfile",
                  REPO / "config/paper.yaml")  # not required (the default): the plan goes on, its rows "not run"
