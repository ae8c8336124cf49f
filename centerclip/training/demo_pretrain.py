"""Pretraining of the demo's tiny CLIP-shaped backbones: the paper's pretrain-then-fine-tune in miniature.

CenterCLIP fine-tunes OpenAI's CLIP, which was pretrained contrastively on image-text pairs (Radford et
al., 2021). The demo does the same at toy scale: a tiny CLIP is trained with CLIP's symmetric InfoNCE
objective on single frames and their captions drawn from a *pretraining twin* — frames of coloured
shapes painted in memory with the synthetic twins' drawing code and worded with their vocabulary, from
a seed stream of its own, so no frame of any demo dataset (and no test video) is ever seen. The result is
saved as a plain state dict with OpenAI's key names, which :func:`centerclip.model.clip.load` reads exactly as
it reads ``ViT-B-32.pt``; the demo's ``backbones:`` then name it with ``pretrained:``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from centerclip.util import atomic
from centerclip.model.clip import CLIP, CLIPConfig
from centerclip.data.datasets import normalise_frames
from centerclip.data.synthetic.captions import Event, paraphrase
from centerclip.data.synthetic.render import COLOURS, MOTIONS, SHAPES, draw_shape
from centerclip.model.tokenizer import tokenize
from centerclip.training.objective import contrastive_loss

log = logging.getLogger("centerclip.training.demo_pretrain")


@dataclass
class PretrainSettings:
    """``architecture``: every :class:`CLIPConfig` field; the rest: the optimisation. A backbone's
    ``pretrain:`` of the workflow config, whose defaults config/schema.yaml fills in."""

    architecture: dict
    steps: int
    batch_size: int
    lr: float
    warmup_steps: int
    weight_decay: float
    context_length: int
    seed: int
    init_seed: int
    init_from: str | None = None  # a pretrained state dict to start from (resized to this patch size)
    threads: int = 2  # CPU threads (the job's, not a setting of the result)


@functools.lru_cache(maxsize=4)
def _backgrounds(size: int, n: int = 16) -> np.ndarray:
    """``n`` textured dark backgrounds uint8 [n, size, size, 3], as the twins' (grey 30 + noise < 12):
    drawing fresh noise for every frame would cost more than the model's step."""
    rng = np.random.default_rng(np.random.SeedSequence([size, 0xbac]))
    return (30 + rng.integers(0, 12, size=(n, size, size, 3))).astype(np.uint8)


def draw_frame(event: Event, rng: np.random.Generator, size: int) -> np.ndarray:
    """One ``size`` x ``size`` frame of ``event`` as the twins draw it (textured dark background, the
    shape at a random point of its path, radius 0.14 of the side): uint8 [size, size, 3]."""
    backgrounds = _backgrounds(size)
    frame = backgrounds[rng.integers(len(backgrounds))].copy()
    r = 0.14 * size * rng.uniform(0.85, 1.15)
    dx, dy = MOTIONS[event.motion]
    progress = rng.uniform(0.0, 1.0)
    cx = size / 2 + dx * (progress - 0.5) * (size - 3 * r) + rng.normal(0, 0.05 * size) * (dx == 0)
    cy = size / 2 + dy * (progress - 0.5) * (size - 3 * r) + rng.normal(0, 0.05 * size) * (dy == 0)
    draw_shape(frame, event.shape, cx, cy, r, COLOURS[event.colour])
    return frame


def sample_batch(n: int, rng: np.random.Generator, size: int, context_length: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` pretraining pairs: CLIP-normalised frames float [n, 3, size, size] and caption tokens
    long [n, context_length]. Each frame shows one event; its caption is a random wording of it."""
    colours, motions = list(COLOURS), list(MOTIONS)
    events = [Event(colours[rng.integers(len(colours))], SHAPES[rng.integers(len(SHAPES))],
                    motions[rng.integers(len(motions))]) for _ in range(n)]
    frames = np.stack([draw_frame(e, rng, size) for e in events])
    captions = [paraphrase((e,), rng) for e in events]
    return normalise_frames(frames), tokenize(captions, context_length=context_length)


def resize_patches(state: dict[str, torch.Tensor], patch: int, grid: int) -> dict[str, torch.Tensor]:
    """A CLIP ViT state dict made for another patch size: the patch kernel ``visual.conv1.weight``
    [W, 3, p, p] resampled to ``patch`` (area-average, times the area ratio, so a smooth image gives
    each token the same response) and the patch positions of ``visual.positional_embedding``
    interpolated bilinearly to a ``grid`` x ``grid`` grid (FlexiViT's resize, Beyer et al., CVPR 2023,
    in its simplest form). Everything else is shared as is."""
    out = dict(state)
    kernel = state["visual.conv1.weight"]
    scale = (kernel.shape[-1] / patch) ** 2
    out["visual.conv1.weight"] = F.interpolate(kernel, size=(patch, patch), mode="area") * scale
    pos = state["visual.positional_embedding"]
    old = int(round((pos.shape[0] - 1) ** 0.5))
    grid_pos = pos[1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    grid_pos = F.interpolate(grid_pos, size=(grid, grid), mode="bilinear", align_corners=False)
    out["visual.positional_embedding"] = torch.cat([pos[:1], grid_pos.permute(0, 2, 3, 1).reshape(grid * grid, -1)])
    return out


def _initial_model(s: PretrainSettings) -> CLIP:
    """A seeded random CLIP of ``s.architecture``, or the weights of ``s.init_from`` resized to it."""
    torch.manual_seed(s.init_seed)
    model = CLIP(CLIPConfig(**s.architecture))
    if s.init_from:
        cfg = model.config
        start = torch.load(s.init_from, map_location="cpu", weights_only=True)
        start = resize_patches(start, cfg.vision_patch_size, cfg.image_resolution // cfg.vision_patch_size)
        model.load_state_dict(start, strict=True)
    return model


def _lr(step: int, s: PretrainSettings) -> float:
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * 0.5 * (1 + math.cos(math.pi * progress))


def pretrain(s: PretrainSettings) -> tuple[CLIP, list[float]]:
    """Train a tiny CLIP of ``s.architecture`` from a seeded random init (or ``s.init_from``); returns it
    and the losses."""
    torch.set_num_threads(s.threads)
    model = _initial_model(s)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=s.lr, betas=(0.9, 0.98), eps=1e-6)
    rng = np.random.default_rng(np.random.SeedSequence([s.seed, 0x5eed]))  # not a twin's seed stream
    losses, t0 = [], time.perf_counter()
    model.train()
    for step in range(s.steps):
        images, tokens = sample_batch(s.batch_size, rng, model.config.image_resolution, s.context_length)
        for group in opt.param_groups:
            group["lr"] = _lr(step, s)
        img = F.normalize(model.encode_image(images), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)
        loss = contrastive_loss(model.logit_scale.exp() * img @ txt.t())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():  # CLIP clamps its temperature at 100
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if step % 25 == 0 or step == s.steps - 1:
            log.info("step %d/%d loss %.3f (%.0f s)", step + 1, s.steps, losses[-1], time.perf_counter() - t0)
    return model.eval(), losses


def colour_shape_accuracy(model: CLIP, n: int = 240, seed: int = 1, context_length: int = 32) -> float:
    """Share of ``n`` fresh pretraining frames whose best-scoring prompt among "a <colour> <shape>"
    (12 prompts, chance 1/12) names their colour and shape: a check that pretraining took."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xe7a1]))
    pairs = [(c, sh) for c in COLOURS for sh in SHAPES]
    truth = [pairs[i % len(pairs)] for i in range(n)]
    frames = np.stack([draw_frame(Event(c, sh, list(MOTIONS)[rng.integers(len(MOTIONS))]), rng,
                                  model.config.image_resolution) for c, sh in truth])
    prompts = tokenize([f"a {c} {sh}" for c, sh in pairs], context_length=context_length)
    with torch.no_grad():
        img = F.normalize(model.encode_image(normalise_frames(frames)), dim=-1)
        txt = F.normalize(model.encode_text(prompts), dim=-1)
    best = (img @ txt.t()).argmax(dim=1).tolist()
    return float(np.mean([pairs[b] == t for b, t in zip(best, truth)]))


def pretrain_to(settings: PretrainSettings, weights: str | Path, summary: str | Path) -> dict:
    """Pretrain and write the state dict to ``weights`` and a JSON summary (settings, seconds, loss,
    colour-and-shape accuracy on fresh frames) to ``summary``, both atomically."""
    t0 = time.perf_counter()
    model, losses = pretrain(settings)
    atomic.save_torch(model.state_dict(), weights)
    result = {"settings": asdict(settings), "seconds": round(time.perf_counter() - t0, 1),
              "loss_first": round(losses[0], 4), "loss_last_25_mean": round(float(np.mean(losses[-25:])), 4),
              "colour_shape_accuracy": round(colour_shape_accuracy(model, context_length=settings.context_length), 4),
              "colour_shape_chance": round(1 / (len(COLOURS) * len(SHAPES)), 4)}
    atomic.write_json(result, summary)
    log.info("%s", result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="JSON of PretrainSettings")
    parser.add_argument("--out", required=True, help="state dict to write (OpenAI key names)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    pretrain_to(PretrainSettings(**json.loads(args.settings)), args.out, Path(args.out).with_suffix(".pretrain.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
