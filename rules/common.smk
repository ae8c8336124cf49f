# Config validation, the experiment table, paths and input functions. All Python of the workflow lives here.
import os

import yaml

from centerclip.data.sources import SOURCES, missing_files
from centerclip.workflow_config import (
    ConfigError,
    load_experiments,
    resolve_config_path,
    run_config,
    validate_config,
)

try:
    validate_config(config, schema_path=workflow.source_path("../config/schema.yaml"))
    EXPERIMENTS, DATASET_DEFAULTS = load_experiments(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

EXPERIMENTS_FILE = str(resolve_config_path(config, "experiments"))
PAPER_NUMBERS = str(resolve_config_path(config, "paper_numbers"))
DATA = config["data_dir"]
RESULTS = config["results_dir"]
LOGS = os.path.join(RESULTS, "logs")
BENCH = os.path.join(RESULTS, "benchmarks")
ENV = "../environment.yml"
TABLES = [f"table{n}" for n in range(1, 10)]
# Table 3 is two sub-tables in the paper (training on 7K and on 9K); table3.md holds both
TABLE_PARTS = {t: [t] for t in TABLES} | {"table3": ["table3a", "table3b"]}
FIGURES = ["figure3", "figure4", "figure5"]


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    experiment="[A-Za-z0-9_.-]+",
    seed=r"\d+",
    shard=r"\d+",
    split="[A-Za-z0-9]+",
    table=r"table\d",


def dataset_cfg(dataset):
    return config["datasets"][dataset]


def raw_dir(dataset):
    """Where the dataset's raw files are: a configured source, the placed/download root, or the twin."""
    d = dataset_cfg(dataset)
    return d.get("source") or d.get("root") or os.path.join(DATA, "raw", dataset)


def acquisition(dataset):
    """How a dataset's raw files come: synthetic | source (already on disk) | download | placed (gated)."""
    d = dataset_cfg(dataset)
    if "synthetic" in d:
        return "synthetic"
    if d.get("source"):
        return "source"
    return "placed" if SOURCES[d["format"]].gated else "download"


def acquisition_cfg(dataset):
    """The part of a dataset's config that decides its raw files (a param of `acquire`): editing the
    other keys (allow_missing_test_videos, cache_storage, ...) must not re-acquire and rebuild everything."""
    keys = ("format", "synthetic", "source", "root", "mirror", "required")
    return {k: v for k, v in dataset_cfg(dataset).items() if k in keys}


def unavailable_reason(dataset):
    """Why a dataset cannot run now (gated files not placed), or None."""
    if acquisition(dataset) not in ("placed", "source"):
        return None
    missing = missing_files(dataset_cfg(dataset)["format"], raw_dir(dataset))
    if not missing:
        return None
    return (f"{dataset} not provided: {len(missing)} required files missing under {raw_dir(dataset)} "
            f"(run `snakemake {os.path.join(DATA, dataset, 'raw.ready')}` for the list and where to obtain them)")


def run_dir(dataset, experiment, seed):
    return os.path.join(RESULTS, "runs", dataset, experiment, f"seed{seed}")


def metrics_files(experiment):
    """metrics.json of every seed of one experiment."""
    dataset = EXPERIMENTS[experiment]["dataset"]
    return [os.path.join(run_dir(dataset, experiment, s), "metrics.json") for s in config["seeds"]]


def runs_showing(key):
    """Experiment ids whose `rows` name table/figure ``key``: its parts (table3 -> 3a, 3b) or, for a
    figure, its panels (figure4 -> figure4_lsmdc_K, ...)."""
    keys = TABLE_PARTS.get(key, [key])
    return [e for e, exp in EXPERIMENTS.items()
            if any(k in keys or k.startswith(key + "_") for k in exp["rows"])]


def runnable(experiments):
    return [e for e in experiments if unavailable_reason(EXPERIMENTS[e]["dataset"]) is None]


def not_run(experiments):
    return {e: unavailable_reason(EXPERIMENTS[e]["dataset"]) for e in experiments
            if unavailable_reason(EXPERIMENTS[e]["dataset"]) is not None}


def metrics_inputs(key):
    return [m for e in runnable(runs_showing(key)) for m in metrics_files(e)]


def metrics_by_experiment(key):
    return {e: metrics_files(e) for e in runnable(runs_showing(key))}


def manifest_path(dataset, split=None):
    default = (dataset_cfg(dataset).get("train_splits") or [None])[0]
    name = "manifest.csv" if split in (None, default) else f"manifest_{split}.csv"
    return os.path.join(DATA, dataset, name)


def shard_outputs(wildcards):
    return expand(
        os.path.join(DATA, "{dataset}", "compressed", "shard{shard}.tsv"),
        dataset=wildcards.dataset,
        shard=range(config["preprocess"]["shards"]),
    )


def cache_storage(dataset):
    """How frames.h5 stores frames: the dataset's cache_storage, else preprocess.cache_storage, else raw."""
    return dataset_cfg(dataset).get("cache_storage") or config["preprocess"].get("cache_storage", "raw")


def coverage_gate(wildcards):
    """The test-coverage check of the run's dataset: an order-only input (ancient), so allowing one more
    missing test video later reruns no training."""
    return ancient(os.path.join(DATA, wildcards.dataset, "test_coverage.json"))


def backbone_inputs(wildcards):
    """A pretrained backbone file is an input of the training job (so it is downloaded first)."""
    model = config["backbones"][EXPERIMENTS[wildcards.experiment]["backbone"]]
    return [model["pretrained"]] if model.get("pretrained") else []


def all_outputs():
    out = [os.path.join(RESULTS, "tables", f"{t}.md") for t in TABLES]
    out += [os.path.join(RESULTS, "figures", f"{f}.png") for f in FIGURES]
    return out


onsuccess:
    print(f"\nTables:  {os.path.abspath(os.path.join(RESULTS, 'tables'))}")
    print(f"Figures: {os.path.abspath(os.path.join(RESULTS, 'figures'))}")
