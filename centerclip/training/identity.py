"""A run's identity: the digest of what a training computes, so that a resume state or a finished
checkpoint is continued or kept only by a run that would compute the same weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from centerclip.data.digests import file_sha256
from centerclip.data.upstreams import openai_release


# train keys that do not change the trained weights (see run_identity)
RESULT_NEUTRAL_TRAIN_KEYS = ("num_workers", "checkpoint_every_steps", "eval_every_epoch")


def run_identity(raw: dict, weights_sha256: str | None = None) -> str:
    """Hex sha256 naming what a training run computes: a resume state (``last.pt``) is continued only
    by a run with the same identity.

    It hashes the canonical JSON (sorted keys) of the run config ``raw`` without the parts that do
    not change the trained weights, plus ``weights_sha256`` (the pretrained weights file's digest;
    None for a randomly initialised model, whose init settings are in ``raw["model"]``):

    - ``eval``: test-time settings (frames, context length, batch size); training never reads them,
      and the evaluation job recomputes the final metrics with the current ones;
    - ``label``: the name the tables and figures print; training never reads it;
    - ``train.num_workers``: DataLoader processes; data order and frame sampling depend only on
      (seed, epoch, item), not on which process loads them;
    - ``train.checkpoint_every_steps``: how often ``last.pt`` is written; a resumed run ends with the
      same weights as an uninterrupted one;
    - ``train.eval_every_epoch``: whether test metrics are computed after each epoch; evaluation does
      not change the weights, and each step reseeds its random numbers from (seed, step);
    - ``plugins``: which modules register the methods; the method's name and parameters (in ``reduction``)
      say what is computed;
    - ``cache``, the folder of ``manifest`` and the ``pretrained`` path: where files lie, not what they
      hold (moving ``data_dir`` retrains nothing); the run id names the dataset, the manifest's file name
      its training list, and ``weights_sha256`` the weights wherever their file moved.

    Everything else (model, reduction, the other train keys, run id) is included, so a changed value,
    an added key or a removed key gives another identity.
    """
    kept = {k: v for k, v in raw.items() if k not in ("eval", "label", "cache", "plugins")}
    if "manifest" in kept:  # its name says which training list (manifest_7k.csv); its folder does not matter
        kept["manifest"] = os.path.basename(str(kept["manifest"]))
    if isinstance(kept.get("model"), dict) and weights_sha256 is not None:
        kept["model"] = {k: v for k, v in kept["model"].items() if k != "pretrained"}
    if isinstance(kept.get("train"), dict):
        kept["train"] = {k: v for k, v in kept["train"].items() if k not in RESULT_NEUTRAL_TRAIN_KEYS}
    payload = {"run_config": kept, "weights_sha256": weights_sha256}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def weights_record(model_cfg: dict, sha256: str | None) -> dict:
    """The summary's ``weights`` entry: ``{"path", "sha256", "openai"}`` for a ``pretrained`` model
    (``sha256`` of its file), ``{"random": true, "init_seed"}`` for a randomly initialised one."""
    if model_cfg.get("pretrained"):
        return {"path": str(Path(model_cfg["pretrained"]).resolve()), "sha256": sha256,
                "openai": openai_release(sha256) if sha256 else None}
    return {"random": True, "init_seed": int(model_cfg.get("init_seed", 0))}


def pretrained_sha256(model_cfg: dict) -> str | None:
    """Hex sha256 of a ``pretrained`` model's weights file (streamed); None for a random model or a
    missing file (which then fails where the model is built)."""
    path = model_cfg.get("pretrained")
    return file_sha256(path) if path and Path(path).is_file() else None


def config_identity(raw: dict) -> str:
    """:func:`run_identity` of the run config ``raw`` with the weights file now at its ``pretrained`` path."""
    return run_identity(raw, pretrained_sha256(raw.get("model", {})))


def checkpoint_identity(path: str | os.PathLike) -> str | None:
    """The :func:`run_identity` of the training that wrote ``checkpoint.pt`` (or ``last.pt``).

    A checkpoint.pt written before identities were recorded gets the identity of its recorded run
    config with the weights file now at its ``pretrained`` path (assumed unchanged); a last.pt
    without one gets None (never resumed).
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    found = ckpt.get("run_identity") or ckpt.get("summary", {}).get("run_identity")
    if found or "run_config" not in ckpt:
        return found
    return config_identity(ckpt["run_config"])
