"""A run's complete configuration: what the train and evaluate jobs read.

The workflow writes one ``run.yaml`` per (dataset, experiment, seed); the jobs read nothing
else, so a run can be repeated by hand with ``python -m centerclip.train --run-config run.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
import yaml

from centerclip import atomic
from centerclip.video_encoder import TokenReduction


@dataclass
class TrainSettings:
    epochs: int = 5
    batch_size: int = 128  # global batch: split over ranks x grad_accum micro-batches
    grad_accum: int = 1  # micro-batches per rank and step; the loss stays the global-batch InfoNCE
    checkpoint_every_steps: int = 0  # also write last.pt every N steps (0 = only at epoch ends)
    eval_every_epoch: bool = True  # rank 0 writes metrics_epoch{N}.json after each epoch
    lr: float = 5e-6
    warmup_fraction: float = 0.1
    weight_decay: float = 0.2
    grad_clip: float = 1.0
    num_frames: int = 12
    context_length: int = 32
    seed: int = 42
    num_workers: int = 0


@dataclass
class EvalSettings:
    num_frames: int = 12
    context_length: int = 32
    batch_size: int = 32


@dataclass
class RunConfig:
    run_id: str
    dataset: str
    cache: str
    manifest: str
    model: dict
    reduction: TokenReduction
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    raw: dict = field(default_factory=dict)  # the file as read, recorded in provenance

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        try:
            return cls(
                run_id=d["run_id"], dataset=d["dataset"], cache=d["cache"], manifest=d["manifest"],
                model=dict(d["model"]), reduction=TokenReduction.from_dict(d.get("reduction", {})),
                train=TrainSettings(**d.get("train", {})), eval=EvalSettings(**d.get("eval", {})), raw=d,
            )
        except KeyError as exc:
            raise ValueError(f"run config lacks key {exc}") from None
        except TypeError as exc:  # unknown key in a section
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


def write_yaml_atomic(data: dict, path: str | os.PathLike) -> None:
    """Write a run config as YAML (keys in their given order), atomically."""
    atomic.write_yaml(data, path)
