"""The Snakemake workflow: config validation, the job graph, lint, and the demo end to end (tiny)."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from centerclip.workflow_config import ConfigError, run_config, validate_config

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]


@pytest.fixture(scope="module")
def demo_config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_demo_config_is_valid(demo_config):
    validate_config(demo_config)


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c["train"].__setitem__("epochz", 3), r"unknown key \['epochz'\] under train"),
    (lambda c: c["train"].__setitem__("epochs", "three"), r"key train.epochs: 'three' is not of type 'integer'"),
    (lambda c: c["experiments"]["baseline"].__setitem__("method", "meanp"), r"experiments.baseline.method"),
    (lambda c: c["experiments"]["baseline"].__setitem__("dataset", "msvd"), r"experiments.baseline.dataset"),
    (lambda c: c["tables"]["demo_msrvtt"]["experiments"].append("nope"), r"tables.demo_msrvtt.experiments"),
    (lambda c: c["experiments"]["kmedoids_B6-4-49"]["stages"][0].__setitem__("segments", 5), r"divide num_frames"),
    (lambda c: c["experiments"]["kmedoids_B6-4-49"]["stages"][0].__setitem__("block", 12), r"vision blocks"),
])
def test_config_errors_name_the_key(demo_config, mutate, message):
    bad = copy.deepcopy(demo_config)
    mutate(bad)
    with pytest.raises(ConfigError, match=message):
        validate_config(bad)


def test_run_config_merges_experiment_overrides(demo_config):
    cfg = copy.deepcopy(demo_config)
    cfg["experiments"]["baseline"]["train"] = {"lr": 1e-5}
    rc = run_config(cfg, "msrvtt", "baseline", 7)
    assert rc["train"]["lr"] == 1e-5 and rc["train"]["seed"] == 7 and rc["train"]["epochs"] == cfg["train"]["epochs"]
    assert rc["cache"].endswith("msrvtt/frames.h5") and rc["reduction"] == {"method": "meanP"}


def snakemake(args, cwd, env, check=True):
    proc = subprocess.run(SNAKEMAKE + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def test_dry_run_lists_the_demo_jobs(tmp_path, venv_env):
    out = snakemake(["-n", "--cores", "1", "-d", str(tmp_path), "--configfile", str(REPO / "config/config.yaml")],
                    REPO, venv_env).stdout
    jobs = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            jobs[parts[0]] = int(parts[1])
    assert jobs["train"] == 2 and jobs["evaluate"] == 2 and jobs["compress_shard"] == 2 and jobs["table"] == 1


def test_lint_is_clean(venv_env):
    proc = snakemake(["--lint"], REPO, venv_env)
    out = proc.stdout + proc.stderr
    assert "Congratulations" in out and "Lint for" not in out


def test_misspelt_config_key_stops_with_its_name(tmp_path, demo_config, venv_env):
    bad = copy.deepcopy(demo_config)
    bad["preprocess"]["fsp"] = 3
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(["-n", "--cores", "1", "-d", str(tmp_path), "--configfile", str(tmp_path / "bad.yaml")],
                     REPO, venv_env, check=False)
    assert proc.returncode != 0
    assert "unknown key ['fsp'] under preprocess" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_demo_end_to_end_tiny(tmp_path, demo_config, venv_env):
    """The whole demo pipeline, shrunk: videos -> ffmpeg -> HDF5 -> 2 trainings -> metrics -> table + figure."""
    cfg = copy.deepcopy(demo_config)
    cfg["datasets"]["msrvtt"]["synthetic"].update(n_train=12, n_test=6)
    cfg["train"].update(epochs=1, batch_size=4)
    cfg["model"]["random"]["vision_layers"] = 7
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(["--cores", "2", "-d", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")], REPO, venv_env)

    table = (tmp_path / "results/tables/demo_msrvtt.md").read_text()
    assert "Demo numbers" in table and table.count("ours (n=1)") == 2 and table.count("| paper |") == 2
    csv = (tmp_path / "results/tables/demo_msrvtt.csv").read_text()
    assert "baseline (CLIP4clip (meanP), ViT-B/32)" in csv
    png = tmp_path / "results/figures/demo_msrvtt.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "data/demo/msrvtt/bad_videos.tsv").read_text().startswith("video_id\tsplit")
    for exp in ("baseline", "kmedoids_B6-4-49"):
        run = tmp_path / "results/runs/msrvtt" / exp / "seed42"
        assert (run / "metrics.json").exists() and (run / "checkpoint.pt").exists()
    # every job left a log; a second run has nothing to do
    assert len(list((tmp_path / "results/logs").rglob("*.log"))) == 12  # every job but `all`
    again = snakemake(["-n", "--cores", "1", "-d", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")],
                      REPO, venv_env).stdout
    assert "Nothing to be done" in again
