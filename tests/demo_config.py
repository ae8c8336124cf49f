"""Shrinking the demo config for workflow tests: fewer runs on a smaller twin, and the demo's
pretraining cut to a few steps.

The pretraining rule and the clip.load -> fine-tune path stay the ones `make demo` runs;
tests/test_demo_pretrain.py checks the full pretraining and that it pays off.
"""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TWO_RUNS = ("msrvtt9k_b32_meanP", "msrvtt9k_b32_km_B6-4-49")


def quick_pretraining(cfg: dict, steps: int = 3, batch_size: int = 8) -> dict:
    """``cfg`` (a demo config, changed in place and returned) with every `pretrain:` cut to ``steps``."""
    for backbone in cfg["backbones"].values():
        if "pretrain" in backbone:
            backbone["pretrain"].update(steps=steps, batch_size=batch_size, warmup_steps=1)
    return cfg


def tiny_demo_config(runs=TWO_RUNS, n_train: int = 8, n_test: int = 4, **synthetic) -> dict:
    """The demo config (config/config.yaml) restricted to MSR-VTT ``runs`` on a tiny twin (``n_train``,
    ``n_test`` and any other ``synthetic:`` setting given), batch 4, pretraining cut short."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["datasets"]["msrvtt"]["synthetic"].update(n_train=n_train, n_test=n_test, **synthetic)
    cfg["only_experiments"] = list(runs)
    cfg["train"].update(batch_size=4)
    return quick_pretraining(cfg)
