"""CLIP model: parity with an independent OpenAI-layout reference, checkpoint loading, dims inference."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from centerclip.model.clip import (
    CLIP,
    CLIPConfig,
    ResidualAttentionBlock,
    VisionTransformer,
    config_from_state_dict,
    load,
)

try:  # tests/ may or may not be a package
    from .reference_clip import ReferenceCLIP
except ImportError:
    from reference_clip import ReferenceCLIP

SMALL = CLIPConfig(
    embed_dim=64,
    image_resolution=64,
    vision_layers=2,
    vision_width=128,
    vision_patch_size=16,
    context_length=16,
    vocab_size=1000,
    transformer_width=128,
    transformer_heads=2,
    transformer_layers=2,
)
ATOL = 1e-5


@pytest.fixture(scope="module")
def reference() -> ReferenceCLIP:
    torch.manual_seed(0)
    model = ReferenceCLIP(**dataclasses.asdict(SMALL))
    with torch.no_grad():  # LayerNorms start at 1/0; perturb them so parity covers their parameters
        for name, p in model.named_parameters():
            if ".ln_" in f".{name}":
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def state_dict(reference: ReferenceCLIP) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in reference.state_dict().items()}


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(3, 3, 64, 64, generator=g)
    tokens = torch.zeros(4, SMALL.context_length, dtype=torch.long)
    for row, n in enumerate([0, 3, 7, SMALL.context_length - 2]):
        tokens[row, 0] = 998  # start token
        tokens[row, 1 : n + 1] = torch.randint(1, 997, (n,), generator=g)
        tokens[row, n + 1] = 999  # end token: the largest id
    return images, tokens


def assert_matches_reference(model: CLIP, reference: ReferenceCLIP, inputs, atol: float = ATOL) -> None:
    images, tokens = inputs
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), reference.encode_image(images), atol=atol, rtol=0)
        torch.testing.assert_close(model.encode_text(tokens), reference.encode_text(tokens), atol=atol, rtol=0)


# --- structure and initialisation -------------------------------------------------------------------


def test_state_dict_keys_match_openai_layout(state_dict) -> None:
    model = CLIP(SMALL)
    assert set(model.state_dict()) == set(state_dict)
    keys = set(model.state_dict())
    for key in [
        "visual.conv1.weight",
        "visual.class_embedding",
        "visual.positional_embedding",
        "visual.ln_pre.weight",
        "visual.transformer.resblocks.1.attn.in_proj_weight",
        "visual.transformer.resblocks.1.attn.in_proj_bias",
        "visual.transformer.resblocks.1.attn.out_proj.weight",
        "visual.transformer.resblocks.1.mlp.c_fc.bias",
        "visual.transformer.resblocks.1.mlp.c_proj.weight",
        "visual.ln_post.bias",
        "visual.proj",
        "token_embedding.weight",
        "positional_embedding",
        "transformer.resblocks.1.ln_2.weight",
        "ln_final.weight",
        "text_projection",
        "logit_scale",
    ]:
        assert key in keys
    assert model.config == SMALL
    assert isinstance(model.visual, VisionTransformer)
    assert isinstance(model.visual.transformer.resblocks, nn.ModuleList)
    assert all(isinstance(b, ResidualAttentionBlock) for b in model.visual.transformer.resblocks)
    v = model.visual
    assert (v.width, v.patch_size, v.grid, v.layers) == (128, 16, 4, 2)


def test_initialisation_follows_openai() -> None:
    torch.manual_seed(0)
    config = dataclasses.replace(SMALL, vocab_size=20000, transformer_width=256, transformer_heads=4)
    model = CLIP(config)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert model.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.positional_embedding.std().item() == pytest.approx(0.01, rel=0.2)
    width, layers = 256, 2
    block = model.transformer.resblocks[0]
    assert block.attn.in_proj_weight.std().item() == pytest.approx(width**-0.5, rel=0.1)
    assert block.mlp.c_fc.weight.std().item() == pytest.approx((2 * width) ** -0.5, rel=0.1)
    assert block.mlp.c_proj.weight.std().item() == pytest.approx(width**-0.5 * (2 * layers) ** -0.5, rel=0.1)
    assert model.text_projection.std().item() == pytest.approx(width**-0.5, rel=0.1)
    assert model.visual.proj.std().item() == pytest.approx(128**-0.5, rel=0.1)


def test_config_rejects_impossible_shapes() -> None:
    with pytest.raises(ValueError, match="multiple of 64"):
        dataclasses.replace(SMALL, vision_width=96)
    with pytest.raises(ValueError, match="vision_patch_size"):
        dataclasses.replace(SMALL, image_resolution=60)


# --- numerical parity --------------------------------------------------------------------------------


def test_parity_with_reference(reference, state_dict, inputs) -> None:
    model = CLIP.from_state_dict(state_dict).eval()
    assert model.config == SMALL
    assert_matches_reference(model, reference, inputs)


def test_visual_helpers_compose_to_forward(state_dict, inputs) -> None:
    model = CLIP.from_state_dict(state_dict).eval()
    images, _ = inputs
    with torch.no_grad():
        tokens = model.visual.embed(images)
        assert tokens.shape == (3, 1 + 16, 128)
        for block in model.visual.transformer.resblocks:
            tokens = block(tokens)
        out = model.visual.head(tokens[:, 0])
        torch.testing.assert_close(out, model.encode_image(images), atol=0, rtol=0)
    with pytest.raises(ValueError, match="64, 64"):
        model.visual.embed(torch.zeros(1, 3, 32, 32))


def test_block_is_batch_first_and_independent_across_batch(state_dict) -> None:
    model = CLIP.from_state_dict(state_dict).eval()
    block = model.visual.transformer.resblocks[0]
    x = torch.randn(5, 9, 128)
    with torch.no_grad():
        full = block(x)
        single = block(x[2:3])
        masked = block(x, torch.zeros(9, 9))
    assert full.shape == (5, 9, 128)
    torch.testing.assert_close(full[2:3], single, atol=1e-5, rtol=0)
    torch.testing.assert_close(full, masked, atol=1e-6, rtol=0)
    with pytest.raises(TypeError, match="additive float mask"):
        block(x, torch.ones(9, 9, dtype=torch.bool))


def test_encode_text_shorter_rows(reference, state_dict, inputs) -> None:
    model = CLIP.from_state_dict(state_dict).eval()
    _, tokens = inputs
    short = tokens[:3, :10]  # the first three rows end before position 10
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(short), model.encode_text(tokens[:3]), atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="context_length"):
        model.encode_text(torch.zeros(1, SMALL.context_length + 1, dtype=torch.long))


def test_forward_logits(state_dict, inputs) -> None:
    model = CLIP.from_state_dict(state_dict).eval()
    images, tokens = inputs
    with torch.no_grad():
        per_image, per_text = model(images, tokens)
    assert per_image.shape == (3, 4) and per_text.shape == (4, 3)
    assert per_image.abs().max() <= model.logit_scale.exp() + 1e-4


def test_gradients_reach_every_parameter(state_dict, inputs) -> None:
    model = CLIP.from_state_dict(state_dict).train()
    images, tokens = inputs
    per_image, per_text = model(images[:2], tokens[:2])
    target = torch.arange(2)
    loss = (nn.functional.cross_entropy(per_image, target) + nn.functional.cross_entropy(per_text, target)) / 2
    loss.backward()
    for name, p in model.named_parameters():
        assert p.requires_grad, name
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name != "token_embedding.weight":
            assert p.grad.abs().sum() > 0, name


def test_autocast_bf16_close_to_fp32(state_dict, inputs) -> None:
    model = CLIP.from_state_dict(state_dict).eval()
    images, tokens = inputs
    with torch.no_grad():
        ref_img, ref_txt = model.encode_image(images), model.encode_text(tokens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            img, txt = model.encode_image(images), model.encode_text(tokens)
    cos = nn.functional.cosine_similarity
    assert cos(img.float(), ref_img).min() > 0.99
    assert cos(txt.float(), ref_txt).min() > 0.99


def test_half_weights_run() -> None:
    torch.manual_seed(0)
    model = CLIP(SMALL).to(torch.bfloat16).eval()
    with torch.no_grad():
        out = model.encode_image(torch.randn(1, 3, 64, 64))
        txt = model.encode_text(torch.tensor([[998, 5, 999]]))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert txt.dtype == torch.bfloat16 and torch.isfinite(txt.float()).all()


# --- dimension inference -----------------------------------------------------------------------------


def _meta_state_dict(config: CLIPConfig) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        return CLIP(config).state_dict()


def test_config_inferred_for_vit_b32_shapes_on_meta() -> None:
    vit_b32 = CLIPConfig(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12)
    sd = _meta_state_dict(vit_b32)
    assert sd["visual.conv1.weight"].shape == (768, 3, 32, 32)
    assert sd["visual.positional_embedding"].shape == (50, 768)
    sd["input_resolution"] = torch.tensor(224)  # released archives carry these scalars
    sd["context_length"] = torch.tensor(77)
    sd["vocab_size"] = torch.tensor(49408)
    assert config_from_state_dict(sd) == vit_b32
    assert vit_b32.vision_heads == 12 and vit_b32.grid == 7


def test_config_inferred_for_vit_b16_shapes_on_meta() -> None:
    vit_b16 = CLIPConfig(512, 224, 12, 768, 16, 77, 49408, 512, 8, 12)
    sd = _meta_state_dict(vit_b16)
    assert sd["visual.positional_embedding"].shape == (197, 768)
    assert config_from_state_dict(sd) == vit_b16


def test_resnet_checkpoint_is_rejected() -> None:
    sd = {
        "visual.conv1.weight": torch.zeros(32, 3, 3, 3),
        "visual.layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1),
        "visual.attnpool.positional_embedding": torch.zeros(50, 2048),
    }
    with pytest.raises(ValueError, match="not a CLIP ViT checkpoint.*ResNet"):
        config_from_state_dict(sd)


def test_from_state_dict_does_not_alias_or_modify_input(state_dict) -> None:
    before = state_dict["visual.proj"].clone()
    model = CLIP.from_state_dict(state_dict)
    with torch.no_grad():
        model.visual.proj.add_(1.0)
    torch.testing.assert_close(state_dict["visual.proj"], before, atol=0, rtol=0)


def test_missing_and_unexpected_keys_are_named(state_dict) -> None:
    sd = dict(state_dict)
    del sd["transformer.resblocks.1.mlp.c_fc.bias"]
    with pytest.raises(ValueError, match=r"missing keys \[transformer\.resblocks\.1\.mlp\.c_fc\.bias\]"):
        CLIP.from_state_dict(sd)
    sd = dict(state_dict)
    del sd["text_projection"]
    with pytest.raises(ValueError, match="text_projection"):
        CLIP.from_state_dict(sd)
    sd = dict(state_dict, **{"visual.extra": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"unexpected keys \[visual\.extra\]"):
        CLIP.from_state_dict(sd)


def test_open_clip_extras_are_ignored(reference, state_dict, inputs) -> None:
    sd = {f"module.{k}": v for k, v in state_dict.items()}
    sd["module.attn_mask"] = torch.full((16, 16), float("-inf")).triu(1)
    model = CLIP.from_state_dict(sd).eval()
    assert_matches_reference(model, reference, inputs)


# --- files -------------------------------------------------------------------------------------------


def test_torchscript_archive_round_trip(tmp_path: Path, reference, inputs) -> None:
    images, tokens = inputs
    model = ReferenceCLIP(**dataclasses.asdict(SMALL))
    model.load_state_dict(reference.state_dict())
    model.register_buffer("input_resolution", torch.tensor(SMALL.image_resolution))
    model.register_buffer("context_length", torch.tensor(SMALL.context_length))
    model.register_buffer("vocab_size", torch.tensor(SMALL.vocab_size))
    path = tmp_path / "ViT-T-16.pt"
    with warnings.catch_warnings():  # torch.jit is deprecated in this torch; tracing warns about ints
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (images[:1], tokens[:1]), check_trace=False)
        torch.jit.save(traced.half(), str(path))  # released archives are fp16
        saved = torch.jit.load(str(path)).state_dict()
    assert {"input_resolution", "context_length", "vocab_size"} <= set(saved)
    assert saved["visual.proj"].dtype == torch.float16

    loaded = load(path)
    assert loaded.visual.proj.dtype == torch.float32
    expected = ReferenceCLIP(**dataclasses.asdict(SMALL))
    expected.load_state_dict({k: v.float() for k, v in saved.items() if k in expected.state_dict()})
    assert_matches_reference(loaded.eval(), expected.eval(), inputs)


def test_plain_and_wrapped_state_dict_files(tmp_path: Path, reference, state_dict, inputs) -> None:
    for name, obj in [
        ("plain.pt", state_dict),
        ("wrapped.pth", {"state_dict": state_dict, "epoch": 3}),
        ("model.pth", {"model": {f"module.{k}": v for k, v in state_dict.items()}}),
    ]:
        path = tmp_path / name
        torch.save(obj, path)
        assert_matches_reference(load(path).eval(), reference, inputs)


def test_fp16_state_dict_file_is_loaded_as_fp32(tmp_path: Path, inputs) -> None:
    torch.manual_seed(3)
    rounded = {k: v.half() for k, v in CLIP(SMALL).state_dict().items()}
    path = tmp_path / "half.pt"
    torch.save(rounded, path)
    model = load(path).eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    expected = ReferenceCLIP(**dataclasses.asdict(SMALL))
    expected.load_state_dict({k: v.float() for k, v in rounded.items()})
    assert_matches_reference(model, expected.eval(), inputs)


def test_bad_files_raise_value_error_naming_the_file(tmp_path: Path, state_dict) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(ValueError, match="notes.pt"):
        load(text)

    partial = dict(state_dict)
    del partial["visual.ln_post.weight"]
    path = tmp_path / "partial.pt"
    torch.save(partial, path)
    with pytest.raises(ValueError, match=r"partial\.pt.*visual\.ln_post\.weight"):
        load(path)

    listy = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listy)
    with pytest.raises(ValueError, match="list.pt.*not a state dict"):
        load(listy)

    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load(tmp_path / "absent.pt")
