"""Validation of the workflow configuration and the per-run configs derived from it.

Kept out of the Snakefile so that it can be tested and so that every error a user can
cause ends in one message naming the key and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"


class ConfigError(ValueError):
    pass


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validate_config(config: dict, schema_path: str | os.PathLike = SCHEMA_PATH, source: str = "config") -> None:
    """Check ``config`` against the JSON schema and cross-references; raise ConfigError naming the key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), _key_path(e)))
    if errors:
        e = errors[0]
        if e.validator == "additionalProperties":
            extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
            allowed = ", ".join(sorted(e.schema.get("properties", {})))
            where = _key_path(e)
            raise ConfigError(f"{source}: unknown key {extra} under {where}"
                              f"{' (allowed: ' + allowed + ')' if allowed else ''}; check its spelling")
        raise ConfigError(f"{source}: key {_key_path(e)}: {e.message}")

    layers = config["model"].get("random", {}).get("vision_layers")
    for name, exp in config["experiments"].items():
        if exp["dataset"] not in config["datasets"]:
            raise ConfigError(f"{source}: experiments.{name}.dataset = {exp['dataset']!r} is not under datasets "
                              f"({', '.join(config['datasets'])})")
        for i, stage in enumerate(exp.get("stages", [])):
            if layers is not None and stage["block"] >= layers:
                raise ConfigError(f"{source}: experiments.{name}.stages[{i}].block = {stage['block']} but the "
                                  f"model has {layers} vision blocks")
            frames = exp.get("train", {}).get("num_frames", config["train"].get("num_frames", 12))
            if i == 0 and frames % stage["segments"]:
                raise ConfigError(f"{source}: experiments.{name}.stages[0].segments = {stage['segments']} does not "
                                  f"divide num_frames = {frames}")
    for name, table in config["tables"].items():
        for exp in table["experiments"]:
            if exp not in config["experiments"]:
                raise ConfigError(f"{source}: tables.{name}.experiments names {exp!r}, which is not under experiments")


def run_config(config: dict, dataset: str, experiment: str, seed: int) -> dict:
    """The complete config of one run, as the train and evaluate jobs read it."""
    exp = config["experiments"][experiment]
    data = os.path.join(config["data_dir"], dataset)
    train = {**config["train"], **exp.get("train", {}), "seed": int(seed)}
    reduction = {"method": exp["method"]}
    if exp.get("stages"):
        reduction["stages"] = [dict(s) for s in exp["stages"]]
    return {
        "run_id": f"{dataset}/{experiment}/seed{seed}",
        "label": config["label"],
        "dataset": dataset,
        "experiment": experiment,
        "cache": os.path.join(data, "frames.h5"),
        "manifest": os.path.join(data, "manifest.csv"),
        "model": dict(config["model"]),
        "reduction": reduction,
        "train": train,
        "eval": dict(config["eval"]),
    }
