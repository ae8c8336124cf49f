"""Run settings built by hand in tests, over the workflow's own defaults (config/schema.yaml), as the
workflow's run_yaml rule fills them: run.yaml's ``train:`` and ``eval:`` and a backbone's ``pretrain:``
must be complete, and the tests must not keep a second copy of the defaults."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "rules"))  # the workflow's config code lives beside its rules
from workflow_config import with_schema_defaults  # noqa: E402


def train_settings(**given) -> dict:
    """run.yaml's ``train:``: the schema's defaults, seed 42, then ``given`` (epochs, lr, num_frames and
    context_length come from the experiment table in the workflow, so a test gives them)."""
    return {**with_schema_defaults({"train": {}})["train"], "seed": 42, **given}


def pretrain_settings(architecture: dict, **given) -> dict:
    """A backbone's ``pretrain:`` (the fields of centerclip.training.demo_pretrain.PretrainSettings but the job's
    threads and init_from): ``given`` over the schema's defaults."""
    config = with_schema_defaults({"backbones": {"b": {"pretrain": {"architecture": architecture, **given}}}})
    return config["backbones"]["b"]["pretrain"]


#: A random tiny CLIP for training jobs (run.yaml's ``model:``).
TINY_MODEL = {"random": {"embed_dim": 32, "image_resolution": 224, "vision_layers": 3, "vision_width": 64,
                         "vision_patch_size": 32, "context_length": 32, "vocab_size": 49408,
                         "transformer_width": 64, "transformer_heads": 1, "transformer_layers": 1},
              "init_seed": 0}


def run_dict(data: dict, **train) -> dict:
    """A complete run.yaml for a short CenterCLIP training of :data:`TINY_MODEL` on ``data`` (conftest's
    ``tiny_dataset``); ``train`` over the test's defaults (2 epochs, batch 4, lr 1e-3, 4 frames, 32 words)."""
    return {"run_id": "tiny/test/seed42", "dataset": "tiny", "cache": str(data["cache"]),
            "manifest": str(data["manifest"]), "model": TINY_MODEL,
            "reduction": {"method": "centerclip", "stages": [{"block": 1, "segments": 2, "clusters": 20}]},
            "train": train_settings(**{"epochs": 2, "batch_size": 4, "lr": 1e-3, "num_frames": 4, "context_length": 32,
                                       **train}),
            "eval": {"num_frames": 4, "context_length": 32, "batch_size": 4}}
