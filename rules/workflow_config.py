"""Validation of the workflow configuration and the per-run configs derived from it.

Workflow code, beside the rules that import it (rules/common.smk) and not in the ``centerclip``
library: it reads the workflow's own files (config/schema.yaml, the experiment table) relative to
this checkout. Kept out of the .smk files so that it can be tested and so that every error a user
can cause ends in one message naming the key and what to do.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import yaml

from centerclip.data.upstreams import CLIP_RELEASES, UPSTREAMS
from centerclip.model.methods import import_plugins, is_plugin_method, method_class, method_names, params_schema
from centerclip.model.video_encoder import TokenReduction

REPO = Path(__file__).resolve().parent.parent  # the workflow checkout: rules/ and config/ are in it
SCHEMA_PATH = REPO / "config" / "schema.yaml"


class ConfigError(ValueError):
    pass


#: Config keys that the experiment table always sets (per dataset, per experiment), so a value in the
#: config would be accepted and silently ignored; refused with a pointer to what to set instead.
PER_EXPERIMENT_KEYS = (("train", "epochs"), ("train", "lr"), ("train", "num_frames"), ("train", "context_length"),
                       ("eval", "num_frames"), ("eval", "context_length"))


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _filling_defaults(validator_class):
    """``validator_class`` that also sets every absent property that has a ``default:`` in the schema, so
    the schema is the one place a default is written (as snakemake.utils.validate(set_default=True))."""
    check_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def _filled_errors(config: dict, schema_path: str | os.PathLike) -> list[jsonschema.ValidationError]:
    """Fill the schema's defaults into ``config`` (in place) and return its validation errors, shallowest first."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = _filling_defaults(jsonschema.Draft202012Validator)(schema)
    return sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), _key_path(e)))


def with_schema_defaults(partial: dict, schema_path: str | os.PathLike = SCHEMA_PATH) -> dict:
    """A copy of ``partial`` (any part of a config, e.g. ``{"train": {"epochs": 2}}``) with the schema's
    defaults filled in, unchecked: what a script or test that builds settings by hand starts from."""
    filled = copy.deepcopy(partial)
    _filled_errors(filled, schema_path)
    return filled


def validate_config(config: dict, schema_path: str | os.PathLike = SCHEMA_PATH, origin: str = "config") -> None:
    """Check ``config`` against the JSON schema and fill in the schema's defaults (in place), then check
    what the schema cannot (keys the experiment table owns, backbone files); raise ConfigError naming the
    key, its message starting with ``origin``."""
    errors = _filled_errors(config, schema_path)
    for section, key in PER_EXPERIMENT_KEYS:
        if key in (config.get(section) or {}):
            raise ConfigError(
                f"{origin}: {section}.{key} would never be used: the experiment table sets it per dataset "
                f"(dataset_defaults in config/experiments.yaml) and per experiment. To shorten or rescale every "
                f"run, set scale.epochs / scale.lr; to change one dataset, edit its dataset_defaults.")
    if errors:
        e = errors[0]
        if e.validator == "additionalProperties":
            extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
            allowed = ", ".join(sorted(e.schema.get("properties", {})))
            where = _key_path(e)
            raise ConfigError(f"{origin}: unknown key {extra} under {where}"
                              f"{' (allowed: ' + allowed + ')' if allowed else ''}; check its spelling")
        raise ConfigError(f"{origin}: key {_key_path(e)}: {e.message}")
    _check_backbone_files(config, origin)


#: The released CLIP archives the workflow downloads (rule download_clip), by their file name under
#: <data_dir>/models/ without its extension (OpenAI's: ViT-B-32.pt) -> their entry in UPSTREAMS.
CLIP_FILES: dict[str, str] = {os.path.splitext(UPSTREAMS[entry].downloads["weights"].filename)[0]: entry
                              for entry in CLIP_RELEASES.values()}


def models_path(config: dict, *parts: str) -> str:
    """<data_dir>/models[/<parts...>]: where pretrained backbone files are downloaded or pretrained to."""
    return os.path.join(config["data_dir"], "models", *parts)


def pretrained_here(config: dict) -> dict[str, str]:
    """Backbones the workflow pretrains itself (the demo: `pretrain:` beside `pretrained:`), by the file name
    under <data_dir>/models/ without its extension -> the backbone's name."""
    return {os.path.splitext(os.path.basename(m["pretrained"]))[0]: name
            for name, m in config["backbones"].items() if m.get("pretrain")}


def _check_backbone_files(config: dict, origin: str) -> None:
    """ConfigError unless every backbone's files are ones the workflow can make: a `mirror:`/`sha256:` applies
    only to a file the workflow downloads (anywhere else it would be ignored), a `pretrain:` backbone writes
    its own file under <data_dir>/models/ (never over OpenAI's), and `init_from` names a `pretrain:` backbone."""
    backbones = config["backbones"]
    clip_paths = {name: models_path(config, f"{name}.pt") for name in CLIP_FILES}
    downloaded = {os.path.normpath(path) for path in clip_paths.values()}
    for name, model in backbones.items():
        if (model.get("mirror") or model.get("sha256")) and \
                os.path.normpath(model.get("pretrained", "")) not in downloaded:
            raise ConfigError(
                f"{origin}: backbones.{name} sets mirror/sha256, but its pretrained file "
                f"{model.get('pretrained')!r} is not one the workflow downloads; set pretrained to "
                f"{' or '.join(clip_paths.values())}, or drop mirror/sha256 and place the file")
    here = pretrained_here(config)
    for stem, name in here.items():
        pretrained = backbones[name]["pretrained"]
        if os.path.normpath(pretrained) != os.path.normpath(models_path(config, f"{stem}.pt")) or stem in CLIP_FILES:
            raise ConfigError(
                f"{origin}: backbones.{name} has `pretrain:`, so the workflow writes its pretrained file; set "
                f"pretrained to a file under {models_path(config)} other than OpenAI's "
                f"{' and '.join(f'{n}.pt' for n in CLIP_FILES)} (got {pretrained!r})")
    for name in here.values():
        start = backbones[name]["pretrain"].get("init_from")
        if start is not None and not backbones.get(start, {}).get("pretrain"):
            raise ConfigError(f"{origin}: backbones.{name}.pretrain.init_from = {start!r} is not a "
                              f"backbone with `pretrain:` ({', '.join(here.values())})")



def resolve_config_path(config: dict, key: str) -> Path:
    """Config paths are relative to the working directory, or to the repository when absent there."""
    path = Path(config[key])
    if not path.is_absolute() and not path.exists():
        path = REPO / path
    return path


#: Keys of an experiment row that are not its method's parameters (those are the row's other keys).
EXPERIMENT_KEYS = ("dataset", "train_split", "backbone", "method", "frames", "lr", "epochs", "rows", "segment_valid",
                   "training_free")


def method_params(exp: dict) -> dict:
    """The parameters of an experiment row's method: its keys other than :data:`EXPERIMENT_KEYS`."""
    return {k: v for k, v in exp.items() if k not in EXPERIMENT_KEYS}


def load_plugins(config: dict) -> None:
    """Import the config's ``plugins`` (relative to the working directory), so that their methods are
    registered; ConfigError naming the key when one cannot be imported."""
    try:
        import_plugins(config.get("plugins") or [], base=os.getcwd())
    except Exception as exc:  # a plug-in's own error too: one message naming the key
        raise ConfigError(f"config key plugins: {exc}") from None


def experiment_schema(schema: dict) -> dict:
    """The schema of the experiment table with the registered methods: ``method`` one of their names, and
    for each, its parameters' schema (derived from the method's dataclass) when ``method`` names it."""
    file_schema = copy.deepcopy({**schema["$defs"]["experiment_file"], "$defs": schema["$defs"]})
    row = file_schema["properties"]["experiments"]["additionalProperties"]
    row["properties"]["method"] = {**row["properties"]["method"], "enum": list(method_names())}
    for name in method_names():
        clash = sorted(set(params_schema(name)["properties"]) & set(EXPERIMENT_KEYS))
        if clash:
            cls = method_class(name)
            raise ConfigError(f"method {name!r} ({cls.__module__}.{cls.__qualname__}) has parameter(s) "
                              f"{', '.join(clash)}, which are keys of every experiment row "
                              f"({', '.join(EXPERIMENT_KEYS)}): rename them")
    row["allOf"] = [{"if": {"properties": {"method": {"const": name}}, "required": ["method"]},
                     "then": params_schema(name)} for name in method_names()]
    return file_schema


def _read_experiment_table(path: Path) -> dict:
    """The experiment table at ``path``, checked against the schema's ``experiment_file`` (with the
    registered methods' parameters) and for a ``dataset_defaults`` entry of every experiment's dataset."""
    try:
        table = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"config key experiments: cannot read {path} ({exc.strerror})") from None
    file_schema = experiment_schema(yaml.safe_load(Path(SCHEMA_PATH).read_text()))
    # a row's "unevaluated properties" error follows from any error in its method's parameters (the then-branch
    # failed, so none of them counts as evaluated): report the cause, not that consequence
    errors = sorted(jsonschema.Draft202012Validator(file_schema).iter_errors(table),
                    key=lambda e: (e.validator == "unevaluatedProperties", len(e.absolute_path), _key_path(e)))
    if errors:
        hint = (" (a plug-in's method: list its module under the config's plugins:)"
                if errors[0].validator == "enum" and errors[0].absolute_path and errors[0].absolute_path[-1] == "method"
                else "")
        raise ConfigError(f"{path}: key {_key_path(errors[0])}: {errors[0].message}{hint}")
    for name, exp in table["experiments"].items():
        if exp["dataset"] not in table["dataset_defaults"]:
            raise ConfigError(f"{path}: experiments.{name}.dataset = {exp['dataset']!r} has no entry under "
                              f"dataset_defaults: give its frames, context_length, lr and epochs there")
    return table


def load_released_list(config: dict) -> dict | None:
    """The list of the authors' released checkpoints that the config's `released:` names (its url pattern and
    ``checkpoints``, id -> entry), or None for a config without `released:`; ConfigError when it is unreadable
    or malformed."""
    # here, not at the top: it imports pandas, which nothing else of this module needs
    from centerclip.paper.released_table import CheckpointListError, read_checkpoint_list

    if "released" not in config:
        return None
    try:
        return read_checkpoint_list(resolve_config_path(config["released"], "checkpoints"))
    except CheckpointListError as exc:
        raise ConfigError(str(exc)) from None


def _check_experiment(where: str, exp: dict, config: dict, frames: int) -> None:
    """ConfigError (``where`` names the experiment) unless its dataset, backbone and training split are in
    ``config`` and its stages fit the backbone's depth and its ``frames``."""
    if exp["dataset"] not in config["datasets"]:
        raise ConfigError(f"{where}.dataset = {exp['dataset']!r} is not under the config's datasets "
                          f"({', '.join(config['datasets'])})")
    if exp["backbone"] not in config["backbones"]:
        raise ConfigError(f"{where}.backbone = {exp['backbone']!r} is not under the config's backbones "
                          f"({', '.join(config['backbones'])})")
    splits = config["datasets"][exp["dataset"]].get("train_splits")
    if "train_split" in exp and (not splits or exp["train_split"] not in splits):
        raise ConfigError(f"{where}.train_split = {exp['train_split']!r} is not in "
                          f"datasets.{exp['dataset']}.train_splits ({splits})")
    try:
        reduction = TokenReduction(exp["method"], segment_valid=exp.get("segment_valid", "any"), **method_params(exp))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    backbone = config["backbones"][exp["backbone"]]
    # the depth, where the config states it (a random or self-pretrained backbone; a file's is read at training)
    layers = (backbone.get("random") or backbone.get("pretrain", {}).get("architecture") or {}).get("vision_layers")
    for i, stage in enumerate(reduction.impl.segment_stages()):
        key = f"stages[{i}]." if "stages" in exp else ""
        if layers is not None and stage.block >= layers:
            raise ConfigError(f"{where}.{key}block = {stage.block} but the backbone has {layers} blocks")
        if i == 0 and frames % stage.segments:
            raise ConfigError(f"{where}.{key}segments = {stage.segments} does not divide its {frames} frames")


def load_experiments(config: dict) -> tuple[dict, dict, dict]:
    """Read and check the experiment table named by ``config["experiments"]``.

    Returns (experiments, dataset_defaults, left_out): the experiments restricted to
    ``config["only_experiments"]`` when given, and those it leaves out (so that tables can say why
    their rows are empty). Each kept experiment's dataset and backbone must exist in the config, and
    its stages must fit the backbone's depth and its frame count; a training-free one (``training_free:
    <experiment>``) must name a trained experiment of the same dataset, backbone and frames, kept too.
    """
    path = resolve_config_path(config, "experiments")
    load_plugins(config)
    table = _read_experiment_table(path)
    experiments, defaults = table["experiments"], table["dataset_defaults"]
    left_out: dict = {}
    only = config.get("only_experiments")
    if only:
        unknown = sorted(set(only) - set(experiments))
        if unknown:
            raise ConfigError(f"config key only_experiments names {unknown}, which are not in {path}")
        left_out = {e: exp for e, exp in experiments.items() if e not in only}
        experiments = {e: experiments[e] for e in only}
    for name, exp in experiments.items():
        _check_experiment(f"{path}: experiments.{name}", exp, config,
                          exp.get("frames", defaults[exp["dataset"]]["frames"]))
        if "training_free" in exp:
            _check_training_free(path, name, table["experiments"], defaults, experiments)
    return experiments, defaults, left_out


#: What a training-free run shares with the experiment whose weights it evaluates: the weights were trained
#: for that dataset (and training list), backbone and frame count.
TRAINING_FREE_SHARED = ("dataset", "train_split", "backbone")


def _check_training_free(path: Path, name: str, table: dict, defaults: dict, kept: dict) -> None:
    """ConfigError naming ``path`` and the experiment unless the training-free experiment ``name`` names an
    experiment of ``table`` that is trained, kept by only_experiments beside it, and of the same dataset,
    training list, backbone and frame count; and unless it leaves lr and epochs (never used) unset."""
    exp, where = table[name], f"{path}: experiments.{name}"
    source = exp["training_free"]
    if source not in table:
        raise ConfigError(f"{where}.training_free = {source!r} is not an experiment of {path}")
    src = table[source]
    if "training_free" in src:
        raise ConfigError(f"{where}.training_free = {source!r} is itself training-free (training_free: "
                          f"{src['training_free']!r}); name the trained experiment whose weights it evaluates")
    for key in TRAINING_FREE_SHARED:
        if exp.get(key) != src.get(key):
            raise ConfigError(f"{where}.{key} = {exp.get(key)!r}, but its training_free experiment {source!r} has "
                              f"{key} = {src.get(key)!r}: a training-free run evaluates that run's weights, so both "
                              f"must have the same {key}")
    frames = [e.get("frames", defaults[e["dataset"]]["frames"]) for e in (exp, src)]
    if frames[0] != frames[1]:
        raise ConfigError(f"{where} has {frames[0]} frames, but its training_free experiment {source!r} has "
                          f"{frames[1]}: both must use the same frame count")
    unused = [k for k in ("lr", "epochs") if k in exp]
    if unused:
        raise ConfigError(f"{where} sets {' and '.join(unused)}, but it is training-free (not trained): remove "
                          f"them; it carries over {source!r}'s training")
    if source not in kept:
        raise ConfigError(f"config key only_experiments keeps {name!r} but not {source!r}, whose weights it "
                          f"evaluates ({where}.training_free); add {source!r} to only_experiments")


#: The frame cache of a dataset, under <data_dir>/<dataset>/.
CACHE_NAME = "frames.h5"


def default_train_split(dataset_cfg: dict) -> str | None:
    """The train split a dataset's plain manifest.csv holds: the first of its ``train_splits`` (MSR-VTT's
    9k in the configs), None for datasets with one split."""
    return (dataset_cfg.get("train_splits") or [None])[0]


def manifest_name(dataset_cfg: dict, split: str | None = None) -> str:
    """The file name, under <data_dir>/<dataset>/, of the manifest for training on ``split``:
    manifest.csv for the default split, manifest_<split>.csv for another."""
    return "manifest.csv" if split in (None, default_train_split(dataset_cfg)) else f"manifest_{split}.csv"


def run_yaml_contents(config: dict, experiments: dict, dataset_defaults: dict, experiment: str,
                      seed: int | str) -> dict:
    """The complete config of one run: what rule run_yaml writes to its run.yaml, which the train and
    evaluate jobs read.

    ``config`` is validated (:func:`validate_config` filled the schema's defaults), so every train and
    eval key is present and run.yaml is complete. Precedence for lr, epochs, frames and context length:
    the experiment's own value, then the paper's per-dataset default (the config may not set them:
    :data:`PER_EXPERIMENT_KEYS`); then the config's ``scale`` multiplies lr and epochs.

    A training-free experiment (``training_free: <experiment>``, not trained: its checkpoint holds that
    experiment's weights of the same seed) gets ``training_free: {from, run_id}`` naming that run, and that
    run's ``train:`` section, which describes how its weights were trained.
    """
    exp = experiments[experiment]
    dataset = exp["dataset"]
    settings = dataset_defaults[dataset]
    source = exp.get("training_free")
    scale = config["scale"]
    data = os.path.join(config["data_dir"], dataset)
    frames = exp.get("frames", settings["frames"])
    context = settings["context_length"]
    lr = float(exp.get("lr", settings["lr"])) * scale["lr"]
    epochs = max(1, round(int(exp.get("epochs", settings["epochs"])) * scale["epochs"]))
    train = {**config["train"], "num_frames": frames, "context_length": context, "lr": lr, "epochs": epochs,
             "seed": int(seed)}
    if source is not None:  # not trained: its weights are the source run's, which this section then describes
        train = run_yaml_contents(config, experiments, dataset_defaults, source, seed)["train"]
    manifest = manifest_name(config["datasets"][dataset], exp.get("train_split"))
    # the method's parameters as the experiment table gives them (so a run's identity changes only with them)
    reduction = {"method": exp["method"], **copy.deepcopy(method_params(exp))}
    if "segment_valid" in exp:
        reduction["segment_valid"] = exp["segment_valid"]
    return {
        "run_id": f"{dataset}/{experiment}/seed{seed}",
        "label": config["label"],
        "dataset": dataset,
        "experiment": experiment,
        "backbone": exp["backbone"],
        "cache": os.path.join(data, CACHE_NAME),
        "manifest": os.path.join(data, manifest),
        "model": dict(config["backbones"][exp["backbone"]]),
        "reduction": reduction,
        # only a plug-in's run names the plug-ins: adding `plugins:` to a config leaves other runs' run.yaml alone
        **({"plugins": list(config["plugins"])} if config.get("plugins") and is_plugin_method(exp["method"]) else {}),
        # only in a training-free run's: a key absent elsewhere leaves every other run's run.yaml (and identity) as it was
        **({"training_free": {"from": source, "run_id": f"{dataset}/{source}/seed{seed}"}} if source else {}),
        # a synthetic twin's recipe is what the run trains on: another recipe (e.g. more test videos) is new data,
        # so its runs retrain instead of meeting the finished-checkpoint guard; real datasets have none
        **({"synthetic_twin": dict(config["datasets"][dataset]["synthetic"])}
           if config["datasets"][dataset].get("synthetic") else {}),
        "train": train,
        "eval": {**config["eval"], "num_frames": frames, "context_length": context},
    }
