"""Training-free runs: an experiment row with `training_free: <experiment>` is not trained; its checkpoint holds
that run's finished weights with its own config (its method applied at evaluation only)."""

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from run_settings import TINY_MODEL, run_dict
from workflow_runner import run_snakemake

from centerclip.data.digests import file_sha256
from centerclip.model.retrieval import RetrievalModel
from centerclip.model.video_encoder import TokenReduction
from centerclip.training.checkpoint import build_clip, read_checkpoint
from centerclip.training.identity import config_identity, run_identity
from centerclip.training.training_free import training_free_checkpoint, write_training_free
from centerclip.util import atomic

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "rules"))  # the workflow's config code lives beside its rules
from workflow_config import ConfigError, load_experiments, run_yaml_contents, validate_config  # noqa: E402

SOURCE = "msrvtt7k_b32_meanP"
TF_KM = "msrvtt7k_b32_tf_km_B6-4-49"


@pytest.fixture(scope="module")
def demo_config():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate_config(config)
    return config


# ---------------------------------------------------------------------------------- the experiment table


def _experiments_with(config: dict, tmp_path: Path, mutate) -> dict:
    """``config`` naming a copy of the experiment table that ``mutate(config, table)`` changed."""
    config = copy.deepcopy(config)
    table = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text())
    mutate(config, table)
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(table, allow_unicode=True))
    config["experiments"] = str(tmp_path / "experiments.yaml")
    return config


def _row(table: dict, name: str = TF_KM) -> dict:
    return table["experiments"][name]


@pytest.mark.parametrize("mutate,message", [
    (lambda c, t: _row(t).__setitem__("training_free", "nope"),
     rf"experiments\.{TF_KM}\.training_free = 'nope' is not an experiment of"),
    (lambda c, t: _row(t).__setitem__("training_free", "msrvtt7k_b32_tf_pool_B6-4-49"),
     r"is itself training-free \(training_free: 'msrvtt7k_b32_meanP'\)"),
    (lambda c, t: _row(t).__setitem__("training_free", "msrvtt9k_b32_meanP"),
     rf"{TF_KM}\.train_split = '7k', but its training_free experiment 'msrvtt9k_b32_meanP' has train_split = '9k'"),
    (lambda c, t: _row(t).__setitem__("training_free", "msrvtt7k_b16_meanP"),
     r"backbone = 'ViT-B/32', but its training_free experiment 'msrvtt7k_b16_meanP' has backbone = 'ViT-B/16'"),
    (lambda c, t: _row(t).__setitem__("frames", 8),
     rf"{TF_KM} has 8 frames, but its training_free experiment '{SOURCE}' has 12"),
    (lambda c, t: _row(t).__setitem__("epochs", 2), rf"{TF_KM} sets epochs, but it is training-free"),
    (lambda c, t: c.__setitem__("only_experiments", [TF_KM]),
     rf"only_experiments keeps '{TF_KM}' but not '{SOURCE}', whose weights it evaluates"),
    (lambda c, t: _row(t).__setitem__("training_free", 3), rf"key experiments\.{TF_KM}\.training_free: 3 is not"),
])
def test_training_free_rows_are_checked_naming_file_and_experiment(demo_config, tmp_path, mutate, message):
    config = _experiments_with(demo_config, tmp_path, mutate)
    with pytest.raises(ConfigError, match=message) as err:
        load_experiments(config)
    assert str(tmp_path / "experiments.yaml") in str(err.value) or "only_experiments" in str(err.value)


def test_a_training_free_run_yaml_names_its_source_and_carries_its_training(demo_config):
    experiments, defaults, _ = load_experiments(demo_config)
    free = run_yaml_contents(demo_config, experiments, defaults, TF_KM, 42)
    source = run_yaml_contents(demo_config, experiments, defaults, SOURCE, 42)
    assert free["training_free"] == {"from": SOURCE, "run_id": f"msrvtt/{SOURCE}/seed42"}
    assert free["train"] == source["train"] and free["manifest"] == source["manifest"]  # its weights' training
    assert free["reduction"]["method"] == "centerclip" and source["reduction"] == {"method": "meanP"}
    # another run: another identity than its source's, on any weights file
    assert run_identity(free, "w") != run_identity(source, "w") and config_identity(free) != config_identity(source)
    # every trained run's run.yaml has no such key (its contents and identity stay as they were)
    assert not any("training_free" in run_yaml_contents(demo_config, experiments, defaults, e, 42)
                   for e, exp in experiments.items() if "training_free" not in exp)


# ---------------------------------------------------------------------------------- the checkpoint


def _source_checkpoint(path: Path, data: dict) -> dict:
    """A finished meanP run's checkpoint.pt of the tiny random model, as the training job writes it."""
    raw = {**run_dict(data), "run_id": "tiny/src/seed42", "experiment": "src", "backbone": "tiny",
           "reduction": {"method": "meanP"}}
    model = RetrievalModel(build_clip(TINY_MODEL), TokenReduction("meanP"))
    summary = {"run_id": raw["run_id"], "steps": 8, "epochs": 2, "global_batch": 4, "seed": 42, "world_size": 1,
               "weights": {"random": True, "init_seed": 0}, "peak_memory_mb": 123.0, "run_identity": "abc",
               "precision": "fp32", "epoch_metrics": [{"epoch": 1, "t2v": {}, "v2t": {}}],
               "provenance": {"git_commit": "deadbeef"}}
    atomic.save_torch({"model": model.state_dict(), "run_config": raw, "summary": summary}, path)
    return raw


def _free_run(source_raw: dict, **reduction) -> dict:
    """The run.yaml of a training-free ToMe run on ``source_raw``'s weights."""
    return {**source_raw, "run_id": "tiny/free/seed42", "experiment": "free",
            "reduction": reduction or {"method": "token_merging", "block": 1, "segments": 2, "r": 4},
            "training_free": {"from": "src", "run_id": source_raw["run_id"]}}


def test_the_checkpoint_is_the_sources_weights_with_this_runs_config(tiny_dataset, tmp_path):
    source = tmp_path / "src" / "checkpoint.pt"
    source_raw = _source_checkpoint(source, tiny_dataset)
    free = _free_run(source_raw)
    (tmp_path / "free").mkdir()
    atomic.write_yaml(free, tmp_path / "free" / "run.yaml")
    summary = write_training_free(tmp_path / "free" / "run.yaml", source, tmp_path / "free")

    ckpt = read_checkpoint(tmp_path / "free" / "checkpoint.pt")
    original = read_checkpoint(source)
    assert ckpt["model"].keys() == original["model"].keys()
    assert all(torch.equal(ckpt["model"][k], original["model"][k]) for k in original["model"])
    assert ckpt["run_config"] == free and ckpt["summary"] == summary
    assert json.loads((tmp_path / "free" / "train_summary.json").read_text()) == summary
    sha = file_sha256(source)
    assert summary["training_free"] == {"from_run": "tiny/src/seed42", "from": "src", "checkpoint": str(source),
                                        "checkpoint_sha256": sha, "source_run_identity": "abc"}
    # how the weights were trained is carried over (the tables compare it with the paper's); what this
    # method would have cost to train, and the source method's per-epoch numbers, are not
    assert (summary["epochs"], summary["global_batch"], summary["weights"]) == (2, 4, {"random": True, "init_seed": 0})
    assert summary["steps"] == 0 and summary["epoch_metrics"] == [] and "peak_memory_mb" not in summary
    assert summary["run_identity"] == run_identity(free, sha) != "abc"

    # the evaluate job runs on it unchanged, with this run's method; its metrics say what it is
    from centerclip.training.evaluate import main as evaluate_main

    out = tmp_path / "free" / "metrics.json"
    assert evaluate_main(["--checkpoint", str(tmp_path / "free" / "checkpoint.pt"), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["run_config"]["reduction"]["method"] == "token_merging"
    assert metrics["train"]["training_free"]["from_run"] == "tiny/src/seed42"
    assert metrics["epochs"] == 2 and metrics["best_epoch_on_test"] is None


def test_a_source_of_another_run_or_itself_training_free_is_refused(tiny_dataset, tmp_path):
    source = tmp_path / "src" / "checkpoint.pt"
    source_raw = _source_checkpoint(source, tiny_dataset)
    read = read_checkpoint(source)
    sha = file_sha256(source)
    other = {**_free_run(source_raw), "training_free": {"from": "other", "run_id": "tiny/other/seed42"}}
    with pytest.raises(ValueError, match=r"the source checkpoint is run 'tiny/src/seed42', but the run config "
                                         r"names 'tiny/other/seed42'"):
        training_free_checkpoint(other, read, sha)
    seed = _free_run(source_raw)
    seed["train"] = {**seed["train"], "seed": 7}
    with pytest.raises(ValueError, match=r"train\.seed is 7 in the run config but 42 in the source run"):
        training_free_checkpoint(seed, read, sha)
    free_source = {**read, "summary": {**read["summary"], "training_free": {"from_run": "x"}}}
    with pytest.raises(ValueError, match="itself training-free"):
        training_free_checkpoint(_free_run(source_raw), free_source, sha)
    with pytest.raises(ValueError, match="not a training-free run's"):
        training_free_checkpoint({**source_raw, "run_id": "tiny/plain/seed42"}, read, sha)
    # a model the evaluate job could not build fails here, when the checkpoint is made
    with pytest.raises(ValueError, match="this run's model cannot be built on the source's weights"):
        training_free_checkpoint(_free_run(source_raw, method="token_merging", block=1, segments=2, q=4), read, sha)


# ---------------------------------------------------------------------------------- the workflow


def test_the_workflow_makes_a_training_free_checkpoint_from_the_trained_source(tmp_path):
    """One rule per checkpoint.pt: train for trained runs, training_free_checkpoint (from the source run's
    checkpoint of the same seed) for training-free ones; a dry run plans the source's training, not theirs."""
    out = run_snakemake(f"results/demo/runs/msrvtt/{TF_KM}/seed42/metrics.json", "-n", "--cores", "1", "-d",
                        tmp_path, "--configfile", REPO / "config/config.yaml").stdout
    jobs = {parts[0]: int(parts[1]) for parts in (line.split() for line in out.splitlines())
            if len(parts) == 2 and parts[1].isdigit()}
    assert jobs["train"] == 1 and jobs["training_free_checkpoint"] == 1 and jobs["evaluate"] == 1
    assert f"runs/msrvtt/{SOURCE}/seed42/checkpoint.pt" in out
    assert f"runs/msrvtt/{TF_KM}/seed42/checkpoint.pt" in out
