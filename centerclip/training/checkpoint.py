"""A training run's checkpoints: the model a run config describes, and the model a checkpoint holds.

``checkpoint.pt`` (final weights) of this package is a dict with the run's config (``run_config``), CLIP's
state dict under the ``clip.`` prefix (``model``) and the training summary; ``last.pt`` (the resume state,
:mod:`centerclip.training.resume`) holds the weights and optimizer state with the run identity but not the
run config.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping

import torch

from centerclip.model.clip import CLIP, CLIPConfig
from centerclip.model.clip import load as load_clip
from centerclip.model.retrieval import RetrievalModel
from centerclip.training.settings import RunConfig


def build_clip(model_cfg: dict) -> CLIP:
    """CLIP from the ``model`` section of a run config: ``pretrained`` (a checkpoint path) or
    ``random`` (every CLIPConfig field; the demo's tiny randomly initialised model)."""
    if model_cfg.get("pretrained"):
        return load_clip(model_cfg["pretrained"])
    if "random" not in model_cfg:
        raise ValueError("model config needs 'pretrained: <checkpoint path>' or 'random: {CLIPConfig fields}'")
    torch.manual_seed(int(model_cfg.get("init_seed", 0)))
    return CLIP(CLIPConfig(**model_cfg["random"]))


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The contents of a training checkpoint of this package (``run_config``, ``model``, ``summary``,
    ...) on the CPU, with ``path`` added; ValueError naming the file for anything else."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a training checkpoint of this package ({exc})") from None
    if not isinstance(ckpt, dict) or "run_config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path}: not a training checkpoint of this package (no run_config / model)")
    return {**ckpt, "path": str(path)}


def from_checkpoint(checkpoint: str | os.PathLike | Mapping) -> tuple[RetrievalModel, RunConfig]:
    """The model of a training checkpoint of this package (``checkpoint.pt``) in eval
    mode on the CPU, and the run's config it records. ``checkpoint``: its path, or what
    :func:`read_checkpoint` returned for it.

    Raises:
        ValueError: not such a checkpoint (the message names the file).
    """
    ckpt = read_checkpoint(checkpoint) if not isinstance(checkpoint, Mapping) else checkpoint
    try:
        cfg = RunConfig.from_dict(ckpt["run_config"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{ckpt.get('path', 'checkpoint')}: not a training checkpoint of this package ({exc})") from None
    # CLIP is built from the checkpoint's own weights (all of CLIP's), not from the pretrained file its run
    # started from: that file need not be on this machine, and its weights would only be overwritten.
    random = cfg.model.get("random")
    weights = {k.removeprefix("clip."): v for k, v in ckpt["model"].items()}
    try:
        clip = CLIP.from_state_dict(weights, CLIPConfig(**random) if random else None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{ckpt.get('path', 'checkpoint')}: its weights do not make a CLIP ({exc})") from None
    return RetrievalModel(clip, cfg.reduction).eval(), cfg
