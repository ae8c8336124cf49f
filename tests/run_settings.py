"""Run settings built by hand in tests, over the workflow's own defaults (config/schema.yaml), as the
workflow's run_config rule fills them: run.yaml's ``train:`` and ``eval:`` and a backbone's ``pretrain:``
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
