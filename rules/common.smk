# Config validation, paths and input functions. All Python of the workflow lives here.
import os

from centerclip.workflow_config import ConfigError, run_config, validate_config

try:
    validate_config(config, schema_path=workflow.source_path("../config/schema.yaml"))
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

DATA = config["data_dir"]
RESULTS = config["results_dir"]
LOGS = os.path.join(RESULTS, "logs")
BENCH = os.path.join(RESULTS, "benchmarks")
ENV = "../environment.yml"


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    experiment="[A-Za-z0-9_.-]+",
    seed=r"\d+",
    shard=r"\d+",
    table="[A-Za-z0-9_]+",


def raw_dir(dataset):
    """Where the dataset's raw files are: the configured source, or the synthetic twin."""
    source = config["datasets"][dataset].get("source")
    return source if source else os.path.join(DATA, "raw", dataset)


def run_dir(dataset, experiment, seed):
    return os.path.join(RESULTS, "runs", dataset, experiment, f"seed{seed}")


def experiment_metrics(experiment):
    """metrics.json of every seed of one experiment."""
    exp = config["experiments"][experiment]
    return [os.path.join(run_dir(exp["dataset"], experiment, s), "metrics.json") for s in config["seeds"]]


def table_inputs(wildcards):
    return [m for e in config["tables"][wildcards.table]["experiments"] for m in experiment_metrics(e)]


def shard_outputs(wildcards):
    return expand(
        os.path.join(DATA, "{dataset}", "compressed", "shard{shard}.tsv"),
        dataset=wildcards.dataset,
        shard=range(config["preprocess"]["shards"]),
    )


def all_outputs():
    out = []
    for table in config["tables"]:
        out += [os.path.join(RESULTS, "tables", f"{table}.md"), os.path.join(RESULTS, "figures", f"{table}.png")]
    return out


onsuccess:
    print(f"\nTables:  {os.path.abspath(os.path.join(RESULTS, 'tables'))}")
    print(f"Figures: {os.path.abspath(os.path.join(RESULTS, 'figures'))}")
