"""The demo's pretrain-then-fine-tune: the pretraining twin, the pretrained file clip.load reads, and a
fine-tuned demo run that retrieves well above chance."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from run_settings import pretrain_settings
from workflow_runner import run_snakemake

from centerclip.model.clip import load
from centerclip.data.synthetic.captions import Event
from centerclip.data.synthetic.render import COLOURS
from centerclip.training.demo_pretrain import PretrainSettings, draw_frame, pretrain_to, sample_batch

REPO = Path(__file__).resolve().parent.parent
TINY = {"embed_dim": 32, "image_resolution": 64, "vision_layers": 2, "vision_width": 64, "vision_patch_size": 16,
        "context_length": 77, "vocab_size": 49408, "transformer_width": 64, "transformer_heads": 1,
        "transformer_layers": 1}


def test_a_pretraining_frame_shows_its_event_as_the_twins_draw_it():
    frame = draw_frame(Event("red", "square", "moves left"), np.random.default_rng(0), 224)
    assert frame.shape == (224, 224, 3) and frame.dtype == np.uint8
    red = (frame == COLOURS["red"]).all(-1)
    assert 0.04 < red.mean() < 0.12  # a square of side ~2 x 0.14 x 224 px
    assert frame[~red].max() < 42  # and otherwise the twins' dark textured background


def test_batches_pair_frames_with_captions_naming_their_event():
    images, tokens = sample_batch(6, np.random.default_rng(1), 64, 32)
    assert images.shape == (6, 3, 64, 64) and tokens.shape == (6, 32) and images.dtype == torch.float32


def test_the_pretrained_file_loads_with_clip_load_and_is_reproducible(tmp_path):
    settings = PretrainSettings(**pretrain_settings(TINY, steps=3, batch_size=8, warmup_steps=1), threads=1)
    summary = pretrain_to(settings, tmp_path / "a.pt", tmp_path / "a.json")
    pretrain_to(settings, tmp_path / "b.pt", tmp_path / "b.json")
    a, b = load(tmp_path / "a.pt"), load(tmp_path / "b.pt")
    assert a.config.vision_patch_size == 16 and a.config.image_resolution == 64
    for (k, v), w in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(v, w), k  # same settings, same weights: a cached output, not a lottery
    assert json.loads((tmp_path / "a.json").read_text()) == summary
    assert summary["settings"]["steps"] == 3 and 0 <= summary["colour_shape_accuracy"] <= 1


@pytest.mark.slow
def test_the_demo_pretrains_then_fine_tunes_well_above_chance(tmp_path):
    """The demo config itself, restricted to two MSR-VTT runs: its pretraining rule, clip.load of the
    result, fine-tuning, evaluation. Chance T->V R@1 on the twin's test videos is 1/n_test (1 % at 100)."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    runs = ["msrvtt9k_b32_meanP", "msrvtt9k_b32_km_B6-4-49"]
    cfg["only_experiments"] = runs
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    targets = [f"results/demo/runs/msrvtt/{r}/seed42/metrics.json" for r in runs]
    run_snakemake("-s", REPO / "Snakefile", "-d", tmp_path, "--cores", "2", *targets, "--configfile", config,
                  cwd=tmp_path, timeout=1500)
    pretrained = tmp_path / "data" / "demo" / "models" / "tiny-vit-b32.pt"
    assert load(pretrained).config.vision_patch_size == 32
    summary = json.loads(pretrained.with_suffix(".pretrain.json").read_text())
    assert summary["colour_shape_accuracy"] >= 3 * summary["colour_shape_chance"]
    n_test = cfg["datasets"]["msrvtt"]["synthetic"]["n_test"]
    for target in targets:
        m = json.loads((tmp_path / target).read_text())
        assert m["weights"]["path"].endswith("tiny-vit-b32.pt")  # fine-tuned from the pretrained file
        assert m["efficiency"]["n_test_videos"] == n_test
        assert m["t2v"]["R1"] >= 3 * 100 / n_test, (target, m["t2v"])


def test_the_b16_backbone_starts_from_the_b32_weights_resized():
    from centerclip.model.clip import CLIP, CLIPConfig
    from centerclip.training.demo_pretrain import resize_patches

    b32 = CLIP(CLIPConfig(32, 64, 2, 64, 32, 77, 49408, 64, 1, 1)).state_dict()
    b16 = resize_patches(b32, 16, 4)
    assert b16["visual.conv1.weight"].shape == (64, 3, 16, 16)
    assert b16["visual.positional_embedding"].shape == (1 + 16, 64)
    assert torch.equal(b16["visual.positional_embedding"][0], b32["visual.positional_embedding"][0])  # class
    # a flat image gives every 16-px token the response a 32-px token had: the kernel keeps its sum
    torch.testing.assert_close(b16["visual.conv1.weight"].sum((1, 2, 3)), b32["visual.conv1.weight"].sum((1, 2, 3)))
    for key in b32:
        if key not in ("visual.conv1.weight", "visual.positional_embedding"):
            assert torch.equal(b16[key], b32[key]), key  # every other weight shared as is
    CLIP(CLIPConfig(32, 64, 2, 64, 16, 77, 49408, 64, 1, 1)).load_state_dict(b16, strict=True)
