"""Shrinking the demo config for workflow tests: the demo's pretraining, cut to a few steps.

The pretraining rule and the clip.load -> fine-tune path stay the ones `make demo` runs;
tests/test_demo_pretrain.py checks the full pretraining and that it pays off.
"""


def quick_pretraining(cfg: dict, steps: int = 3, batch_size: int = 8) -> dict:
    """``cfg`` (a demo config, changed in place and returned) with every `pretrain:` cut to ``steps``."""
    for backbone in cfg["backbones"].values():
        if "pretrain" in backbone:
            backbone["pretrain"].update(steps=steps, batch_size=batch_size, warmup_steps=1)
    return cfg
