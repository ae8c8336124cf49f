# Paths and input functions of the workflow. Path functions are named <thing>_path (a pattern when given
# the "{wildcard}" strings), input functions <thing>_inputs; constants are in CAPS. The config was
# validated and the experiment table (EXPERIMENTS, DATASET_DEFAULTS, LEFT_OUT) loaded in the Snakefile.
import os
import re

from centerclip.data.upstreams import UPSTREAMS, missing_files
from workflow_config import (
    CACHE_NAME,
    CLIP_FILES,
    default_train_split,
    manifest_name,
    models_path,
    pretrained_here,
    resolve_config_path,
)

PAPER_NUMBERS = str(resolve_config_path(config, "paper_numbers"))
DATA = config["data_dir"]
RESULTS = config["results_dir"]
LOGS = os.path.join(RESULTS, "logs")
# sha256 of every download without a published digest, recorded at its first download and checked after
DIGESTS = os.path.join(DATA, "download_digests.tsv")
BENCH = os.path.join(RESULTS, "benchmarks")
ENV = "../environment.yml"
# the paper's Tables 1-9, then ours only: results beyond the paper (config/paper_numbers.yaml, ours_only)
TABLES = [f"table{n}" for n in range(1, 10)] + ["beyond"]
# Table 3 is two sub-tables in the paper (training on 7K and on 9K); table3.md holds both
TABLE_PARTS = {t: [t] for t in TABLES} | {"table3": ["table3a", "table3b"]}
# the paper's Figures 3-5, then ours only: R@1 against GFLOPs per video of training-free budget sweeps
FIGURES = ["figure3", "figure4", "figure5", "tradeoff"]
# Backbones the workflow pretrains itself (the demo), by their file name under <data_dir>/models/ without
# its extension -> the backbone's name.
PRETRAINED_HERE = pretrained_here(config)


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    experiment="[A-Za-z0-9_.-]+",
    seed=r"\d+",
    shard=r"\d+",
    split="[A-Za-z0-9]+",
    table="|".join(TABLES),


def dataset_cfg(dataset):
    return config["datasets"][dataset]


def data_path(dataset, *parts):
    """<data_dir>/<dataset>/<parts...>: every file the workflow keeps per dataset (``dataset`` may be the
    "{dataset}" wildcard)."""
    return os.path.join(DATA, dataset, *parts)


def raw_root_path(dataset):
    """Where the dataset's raw files are: its `source:` copy, the placed/download root, or the twin."""
    d = dataset_cfg(dataset)
    return d.get("source") or d.get("root") or os.path.join(DATA, "raw", dataset)


def acquisition(dataset):
    """How a dataset's raw files come: synthetic | source (its `source:` copy, already on disk) | download |
    placed (gated)."""
    d = dataset_cfg(dataset)
    if "synthetic" in d:
        return "synthetic"
    if d.get("source"):
        # the value is a param of acquire: renaming it would rerun every finished dataset given by `source:`
        return "source"
    return "placed" if UPSTREAMS[d["format"]].gated else "download"


def acquisition_cfg(dataset):
    """The part of a dataset's config that decides its raw files (a param of `acquire`): editing the
    other keys (allow_missing_test_videos, cache_storage, ...) must not re-acquire and rebuild everything."""
    keys = ("format", "synthetic", "source", "root", "mirror", "sha256")
    return {k: v for k, v in dataset_cfg(dataset).items() if k in keys}


def unavailable_reason(dataset):
    """Why a dataset cannot run now (gated files not placed), or None: its table rows then say "not run".
    A dataset the config marks `required: true` stops the workflow instead: checked when a target that
    needs it is planned, not at parse time, so the raw.ready target that lists what to place still plans."""
    if acquisition(dataset) not in ("placed", "source"):
        return None
    missing = missing_files(dataset_cfg(dataset)["format"], raw_root_path(dataset))
    if not missing:
        return None
    reason = (f"{dataset} not provided: {len(missing)} required files missing under {raw_root_path(dataset)} "
              f"(run `snakemake {data_path(dataset, 'raw.ready')}` for the list and where to obtain them)")
    if dataset_cfg(dataset)["required"]:
        raise WorkflowError(f"datasets.{dataset}.required is true, but {reason}; or set its required: false to "
                            f"leave its table rows \"not run\"")
    return reason


def cache_path(dataset):
    return data_path(dataset, CACHE_NAME)


def manifest_path(dataset, split=None):
    """The manifest a run on ``split`` trains from (manifest.csv holds the default train split)."""
    return data_path(dataset, manifest_name(dataset_cfg(dataset), split))


def cache_storage(dataset):
    """How frames.h5 stores frames: the dataset's cache_storage, else preprocess.cache_storage (default in the schema)."""
    return dataset_cfg(dataset).get("cache_storage") or config["preprocess"]["cache_storage"]


def shard_inputs(wildcards):
    """The compressed shards' lists of the dataset, all of which its frame cache reads."""
    return expand(
        data_path("{dataset}", "compressed", "shard{shard}.tsv"),
        dataset=wildcards.dataset,
        shard=range(config["preprocess"]["shards"]),
    )


def coverage_inputs(wildcards):
    """The test-coverage check of the run's dataset: an order-only input (ancient), so allowing one more
    missing test video later reruns no training."""
    return ancient(data_path(wildcards.dataset, "test_coverage.json"))


def run_path(dataset, experiment, seed):
    """The folder of one run."""
    return os.path.join(RESULTS, "runs", dataset, experiment, f"seed{seed}")


def run_file_path(name):
    """Path pattern of one file of a run folder, with the {dataset}/{experiment}/{seed} wildcards."""
    return os.path.join(run_path("{dataset}", "{experiment}", "{seed}"), name)


def experiments_pattern(names):
    """A wildcard constraint matching exactly these experiment ids (none: nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


# Experiments that are not trained (training_free: <experiment>) and those that are: rule train makes the
# checkpoint.pt of the latter, rule training_free_checkpoint of the former, so no run has two rules.
TRAINING_FREE = [e for e, exp in EXPERIMENTS.items() if exp.get("training_free")]
TRAINED = [e for e in EXPERIMENTS if e not in TRAINING_FREE]


def training_free_source_path(wildcards):
    """checkpoint.pt of the run whose weights a training-free run evaluates: its training_free experiment's,
    the same seed."""
    source = EXPERIMENTS[wildcards.experiment]["training_free"]
    return os.path.join(run_path(wildcards.dataset, source, wildcards.seed), "checkpoint.pt")


def metrics_paths(experiment):
    """metrics.json of every seed of one experiment."""
    dataset = EXPERIMENTS[experiment]["dataset"]
    return [os.path.join(run_path(dataset, experiment, s), "metrics.json") for s in config["seeds"]]


def clip_path(name):
    """<data_dir>/models/<name>.pt: a pretrained backbone file, downloaded (OpenAI's) or pretrained here."""
    return models_path(config, f"{name}.pt")


def clip_download(name):
    """URL and sha256 of <data_dir>/models/<name>.pt: the mirror and digest of the backbone that names this
    file when it sets them, else OpenAI's (a mirror of OpenAI's file has OpenAI's digest)."""
    official = UPSTREAMS[CLIP_FILES[name]].downloads["weights"]
    for model in config["backbones"].values():
        if os.path.normpath(model.get("pretrained", "")) == os.path.normpath(clip_path(name)):
            return {"url": model.get("mirror") or official.url,
                    "sha256": (model.get("sha256") or official.sha256).lower()}
    return {"url": official.url, "sha256": official.sha256}


def pretrain_start_paths(stem):
    """[the pretrained file a self-pretrained backbone starts from] (its `init_from` backbone's), or []."""
    start = config["backbones"][PRETRAINED_HERE[stem]]["pretrain"].get("init_from")
    return [] if start is None else [config["backbones"][start]["pretrained"]]


def backbone_inputs(wildcards):
    """A pretrained backbone file is an input of the training job (so it is downloaded first)."""
    model = config["backbones"][EXPERIMENTS[wildcards.experiment]["backbone"]]
    return [model["pretrained"]] if model.get("pretrained") else []


def runs_showing(key, experiments=None):
    """Experiment ids whose `rows` name table/figure ``key``: its parts (table3 -> 3a, 3b) or, for a
    figure, its panels (figure4 -> figure4_lsmdc_K, ...). Among the config's experiments by default."""
    keys = TABLE_PARTS.get(key, [key])
    return [e for e, exp in (EXPERIMENTS if experiments is None else experiments).items()
            if any(k in keys or k.startswith(f"{key}_") for k in exp["rows"])]


def left_out_showing(key):
    """Experiments of the table/figure that the config's only_experiments leaves out, with the reason."""
    return {e: "left out by only_experiments in the config" for e in runs_showing(key, LEFT_OUT)}


def table_experiments(key):
    """The experiments a table/figure shows, those only_experiments leaves out included (their rows say so)."""
    return {**{e: EXPERIMENTS[e] for e in runs_showing(key)}, **{e: LEFT_OUT[e] for e in runs_showing(key, LEFT_OUT)}}


def runnable(experiments):
    return [e for e in experiments if unavailable_reason(EXPERIMENTS[e]["dataset"]) is None]


def not_run(experiments):
    reasons = {e: unavailable_reason(EXPERIMENTS[e]["dataset"]) for e in experiments}
    return {e: reason for e, reason in reasons.items() if reason is not None}


def metrics_inputs(key):
    return [m for e in runnable(runs_showing(key)) for m in metrics_paths(e)]


def metrics_by_experiment(key):
    return {e: metrics_paths(e) for e in runnable(runs_showing(key))}


def figure5_run():
    """The experiment Figure 5 draws from (the one whose `rows` name figure5), or None when the config
    does not run it (left out by only_experiments, or its dataset not provided)."""
    runs = runnable(runs_showing("figure5"))
    return runs[0] if runs else None


def figure5_inputs(wildcards):
    experiment = figure5_run()
    if experiment is None:
        raise WorkflowError("figure5: no experiment of the config provides it (the experiment table names it "
                            "in a run's rows as figure5; only_experiments may have left that run out)")
    dataset = EXPERIMENTS[experiment]["dataset"]
    return {"checkpoint": os.path.join(run_path(dataset, experiment, config["seeds"][0]), "checkpoint.pt"),
            "cache": cache_path(dataset), "manifest": manifest_path(dataset)}


# The demo's search check (rules/search.smk): its outputs, when the config's search_demo names a run.
SEARCH = os.path.join(RESULTS, "search")
SEARCH_OUTPUTS = [os.path.join(SEARCH, name) for name in ("index.h5", "queries.html", "recall.json")]


def search_demo_run():
    """(dataset, experiment, seed) of the run the config's search_demo names, or None when the config has
    no search_demo or does not run that run (left out by only_experiments, its dataset not provided, or
    its seed not among the seeds)."""
    spec = config.get("search_demo")
    if not spec or spec["experiment"] not in EXPERIMENTS or spec["seed"] not in config["seeds"]:
        return None
    if not runnable([spec["experiment"]]):
        return None
    return EXPERIMENTS[spec["experiment"]]["dataset"], spec["experiment"], spec["seed"]


def search_demo_inputs(wildcards):
    run = search_demo_run()
    if run is None:
        raise WorkflowError("search_demo: the config's search_demo key is absent, or names a run the config "
                            "does not run (only_experiments, seeds, or its dataset not provided)")
    dataset, experiment, seed = run
    folder = run_path(dataset, experiment, seed)
    return {"checkpoint": os.path.join(folder, "checkpoint.pt"), "metrics": os.path.join(folder, "metrics.json"),
            "manifest": manifest_path(dataset, EXPERIMENTS[experiment].get("train_split")),
            "raw": data_path(dataset, "raw.ready")}


def all_outputs():
    """Every table; every figure whose runs the config has (Figure 5 needs its one run); the search check
    when the config's search_demo names a run it runs."""
    out = [os.path.join(RESULTS, "tables", f"{t}.md") for t in TABLES]
    out += [os.path.join(RESULTS, "figures", f"{f}.png") for f in FIGURES if f != "figure5" or figure5_run()]
    out += SEARCH_OUTPUTS if search_demo_run() else []
    return out


# The authors' released checkpoints (rules/released.smk): the config's `released:` list (RELEASED_LIST,
# loaded in the Snakefile), id -> its entry.
RELEASED = RELEASED_LIST["checkpoints"] if RELEASED_LIST else {}


def released_list_path(wildcards):
    if RELEASED_LIST is None:
        raise WorkflowError("released.md: this config has no `released:` section naming the checkpoint list "
                            "(config/paper.yaml has one: add --configfile config/paper.yaml)")
    return str(resolve_config_path(config["released"], "checkpoints"))


def released_dataset(checkpoint):
    """The config's dataset a released checkpoint is evaluated on: the first of its format, or None."""
    fmt = RELEASED[checkpoint]["format"]
    return next((d for d, c in config["datasets"].items() if c["format"] == fmt), None)


def released_not_run(checkpoint):
    """Why a released checkpoint cannot be evaluated now, or None."""
    dataset = released_dataset(checkpoint)
    if dataset is None:
        return f"the config has no dataset of format {RELEASED[checkpoint]['format']}"
    return unavailable_reason(dataset)


def released_reasons():
    """Released checkpoint id -> why it cannot be evaluated now, or None. Called when the table's job is
    planned, not at parse time: a `required: true` dataset that is missing must not stop other targets
    (e.g. the raw.ready target that lists what to place)."""
    return {c: released_not_run(c) for c in RELEASED}


def released_url(checkpoint):
    return (config["released"].get("mirror") or RELEASED_LIST["url"]).replace("{id}", checkpoint)


def test_only_path(dataset, name):
    """A file of the test-split-only data of a dataset (what released checkpoints are evaluated on)."""
    return data_path(dataset, "test_only", name)


def released_zip_path(checkpoint):
    return os.path.join(DATA, "released", f"{checkpoint}.zip")


def released_metrics_path(checkpoint):
    return os.path.join(RESULTS, "released", checkpoint, "metrics.json")


def released_inputs(wildcards):
    dataset = released_dataset(wildcards.checkpoint)
    return {"checkpoint": released_zip_path(wildcards.checkpoint),
            "manifest": test_only_path(dataset, "manifest.csv"), "cache": test_only_path(dataset, CACHE_NAME),
            "coverage": ancient(test_only_path(dataset, "test_coverage.json"))}
