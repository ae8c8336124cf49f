"""The ToMe rows of the experiment table merge r tokens per block, r chosen so that ToMe's GFLOPs per video
match CenterCLIP (B6 - 4, 49)'s at the real ViT-B/32 shape and 12 frames (config/experiments.yaml)."""

import sys
from pathlib import Path

import pytest
import torch

from centerclip.model.clip import CLIP, CLIPConfig
from centerclip.model.flops import video_encoder_flops
from centerclip.model.video_encoder import TokenReduction

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "rules"))  # the workflow's config code lives beside its rules
from workflow_config import method_params  # noqa: E402

VIT_B32 = CLIPConfig(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12)
CENTERCLIP = "msrvtt7k_b32_km_B6-4-49"
TOME_ROWS = ("msrvtt7k_b32_tome_B6-4-r39", "msrvtt7k_b32_tf_tome_B6-4-r39")


@pytest.fixture(scope="module")
def visual():
    """The vision tower of a random ViT-B/32 (seed 0); the transformer's count depends on shapes only."""
    torch.manual_seed(0)
    return CLIP(VIT_B32).visual.eval()


def gflops(visual, method: str, params: dict) -> float:
    return video_encoder_flops(visual, TokenReduction.from_dict({"method": method, **params}), 12).gflops


def test_tome_rows_merge_the_r_closest_to_centerclips_gflops(experiments, visual):
    rows = [experiments[name] for name in TOME_ROWS]
    assert len({(row["block"], row["segments"], row["r"]) for row in rows}) == 1  # fine-tuned and training-free alike
    params = method_params(rows[0])
    r = params["r"]
    target = gflops(visual, "centerclip", method_params(experiments[CENTERCLIP]))
    counted = {x: gflops(visual, "token_merging", {**params, "r": x}) for x in (r - 1, r, r + 1)}
    # more merged tokens, fewer FLOPs: with counts falling in r, an r at least as close as both neighbours
    # is the closest of all
    assert counted[r - 1] >= counted[r] >= counted[r + 1]
    assert abs(counted[r] - target) <= min(abs(counted[r - 1] - target), abs(counted[r + 1] - target))
    assert counted[r] == pytest.approx(target, rel=1e-3)  # 71.63 GFLOPs each (experiments.yaml's comment)
