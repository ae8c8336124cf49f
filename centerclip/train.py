"""Training job: ``python -m centerclip.train --run-config run.yaml --out-dir DIR``.

Symmetric InfoNCE over the batch similarity matrix, AdamW (betas 0.9/0.98, eps 1e-6,
weight decay on everything but biases, as the original), per-step linear warm-up then
half-cosine to 0, gradient clipping at global norm 1.0, logit scale clamped to
[0.1, ln 100] after each step (REFERENCE §4).

Writes into DIR: ``last.pt`` (resume state, every epoch, atomic), ``checkpoint.pt`` (final
weights + run config), ``train_log.jsonl`` (one line per step) and ``train_summary.json``.
A restarted job resumes from ``last.pt``; data order and frame sampling depend only on
(seed, epoch, step), so a resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from centerclip import atomic
from centerclip.data.annotations import read_manifest
from centerclip.data.datasets import VideoTextDataset
from centerclip.model import RetrievalModel, build_clip
from centerclip.provenance import peak_rss_mb, provenance
from centerclip.run_config import RunConfig

log = logging.getLogger("centerclip.train")

LOGIT_SCALE_MAX = math.log(100.0)
LOGIT_SCALE_MIN = 0.1


class TrainingError(RuntimeError):
    pass


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of a square logits matrix [B, B] whose diagonal holds the positives."""
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def lr_factor(step: int, total_steps: int, warmup_fraction: float) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based): linear warm-up, then half-cosine to 0."""
    warmup = warmup_fraction * total_steps
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(total_steps - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name.endswith(".bias") else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.98), eps=1e-6)


def train_pairs(manifest_path: str) -> list[tuple[str, str]]:
    m = read_manifest(manifest_path)
    m = m[m.split == "train"]
    if m.empty:
        raise TrainingError(f"{manifest_path}: no training rows")
    return list(zip(m.video_id, m.caption))


def run(cfg: RunConfig, out_dir: Path) -> dict:
    """Train one configuration; returns the training summary (also written to DIR)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ts = cfg.train
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(ts.seed)

    dataset = VideoTextDataset(cfg.cache, train_pairs(cfg.manifest), ts.num_frames, ts.context_length,
                               train=True, seed=ts.seed)
    if len(dataset) < ts.batch_size:
        raise TrainingError(f"{len(dataset)} training pairs < batch_size {ts.batch_size}: lower train.batch_size")
    steps_per_epoch = len(dataset) // ts.batch_size  # drop the last partial batch, as the original
    total_steps = steps_per_epoch * ts.epochs

    model = RetrievalModel(build_clip(cfg.model), cfg.reduction).to(device)
    optimizer = make_optimizer(model, ts.lr, ts.weight_decay)
    start_epoch, step = 0, 0
    last = out_dir / "last.pt"
    if last.is_file():
        state = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step = state["epoch"], state["step"]
        log.info("resumed from %s at epoch %d, step %d", last, start_epoch, step)

    log_path = out_dir / "train_log.jsonl"
    model.train()
    t_start = time.perf_counter()
    for epoch in range(start_epoch, ts.epochs):
        dataset.set_epoch(epoch)
        order = torch.Generator().manual_seed(ts.seed * 1000 + epoch)
        loader = DataLoader(dataset, batch_size=ts.batch_size, shuffle=True, generator=order, drop_last=True,
                            num_workers=ts.num_workers, persistent_workers=False)
        with open(log_path, "a") as log_file:
            for batch in loader:
                t0 = time.perf_counter()
                factor = lr_factor(step, total_steps, ts.warmup_fraction)
                for group in optimizer.param_groups:
                    group["lr"] = ts.lr * factor
                logits = model(batch["video"].to(device), batch["video_mask"].to(device),
                               batch["tokens"].to(device))
                loss = contrastive_loss(logits)
                if not torch.isfinite(loss):
                    raise TrainingError(f"loss is {loss.item()} at step {step} (epoch {epoch}); "
                                        f"videos of the batch: {list(batch['video_id'])}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), ts.grad_clip)
                optimizer.step()
                with torch.no_grad():
                    model.clip.logit_scale.clamp_(LOGIT_SCALE_MIN, LOGIT_SCALE_MAX)
                dt = time.perf_counter() - t0
                record = {"epoch": epoch, "step": step, "loss": round(loss.item(), 6), "lr": ts.lr * factor,
                          "videos_per_s": round(ts.batch_size / dt, 2)}
                log_file.write(json.dumps(record) + "\n")
                log.info("epoch %d step %d/%d loss %.4f lr %.3g %.1f videos/s", epoch, step + 1, total_steps,
                         loss.item(), ts.lr * factor, ts.batch_size / dt)
                step += 1
        atomic.save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "epoch": epoch + 1, "step": step}, last)

    summary = {
        "run_id": cfg.run_id,
        "steps": step,
        "epochs": ts.epochs,
        "train_seconds_this_job": round(time.perf_counter() - t_start, 2),
        "peak_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1) if device.type == "cuda"
        else round(peak_rss_mb(), 1),
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS",
        "precision": "fp32",
        "world_size": 1,
        "global_batch": ts.batch_size,
        "weight_decay_policy": "all parameters but biases (as the original code)",
        "provenance": provenance(device),
    }
    atomic.save_torch({"model": model.state_dict(), "run_config": cfg.raw, "summary": summary},
                      out_dir / "checkpoint.pt")
    atomic.write_json(summary, out_dir / "train_summary.json")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-config", required=True, help="run.yaml written by the workflow")
    parser.add_argument("--out-dir", required=True, help="directory for checkpoints and logs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    try:
        cfg = RunConfig.load(args.run_config)
        run(cfg, Path(args.out_dir))
    except (TrainingError, ValueError, KeyError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
