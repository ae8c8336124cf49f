"""A run's complete configuration: what the train and evaluate jobs read.

The workflow writes one ``run.yaml`` per (dataset, experiment, seed); the jobs read nothing
else, so a run can be repeated by hand with ``python -m centerclip.training.train --run-config run.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
import yaml

from centerclip.model.methods import import_plugins
from centerclip.model.video_encoder import TokenReduction


@dataclass
class TrainSettings:
    """``train:`` of run.yaml. No defaults here: the workflow writes every key (the defaults are the
    workflow's, in config/schema.yaml; lr, epochs, frames and words come from its experiment table)."""

    epochs: int
    batch_size: int  # global batch: split over ranks x grad_accum micro-batches
    grad_accum: int  # micro-batches per rank and step; the loss stays the global-batch InfoNCE
    checkpoint_every_steps: int  # also write last.pt every N steps (0 = only at epoch ends)
    eval_every_epoch: bool  # rank 0 writes metrics_epoch{N}.json after each epoch
    lr: float
    warmup_fraction: float
    weight_decay: float
    grad_clip: float
    num_frames: int
    context_length: int
    seed: int
    num_workers: int


@dataclass
class EvalSettings:
    """``eval:`` of run.yaml (test-time frames, words and batch size)."""

    num_frames: int
    context_length: int
    batch_size: int


def _settings(cls, section: str, d: dict):
    """``cls`` from the mapping ``d[section]``, naming a missing or unknown key."""
    given = d.get(section)
    if not isinstance(given, dict):
        raise ValueError(f"run config lacks the section {section!r}")
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in given]
    unknown = sorted(set(given) - set(names))
    problems = ([f"lacks {', '.join(missing)}"] if missing else []) + \
        ([f"unknown {', '.join(unknown)}"] if unknown else [])
    if problems:
        raise ValueError(f"run config section {section!r}: {'; '.join(problems)} "
                         f"(the workflow's run_yaml rule writes every key)")
    return cls(**given)


@dataclass
class RunConfig:
    run_id: str
    dataset: str
    cache: str
    manifest: str
    model: dict
    reduction: TokenReduction
    train: TrainSettings
    eval: EvalSettings
    raw: dict = field(default_factory=dict)  # the file as read, recorded in provenance

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        try:
            # a plug-in's methods must be registered before the reduction section is read
            import_plugins(d.get("plugins") or [])
            return cls(
                run_id=d["run_id"], dataset=d["dataset"], cache=d["cache"], manifest=d["manifest"],
                model=dict(d["model"]), reduction=TokenReduction.from_dict(d.get("reduction", {})),
                train=_settings(TrainSettings, "train", d), eval=_settings(EvalSettings, "eval", d), raw=d,
            )
        except KeyError as exc:
            raise ValueError(f"run config lacks key {exc}") from None
        except TypeError as exc:  # an unknown key of a reduction stage
            raise ValueError(f"run config: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RunConfig":
        with open(path) as f:
            d = yaml.safe_load(f)
        if not isinstance(d, dict):
            raise ValueError(f"{path}: not a run config (expected a mapping)")
        try:
            return cls.from_dict(d)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

