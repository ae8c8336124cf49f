"""Training job: ``python -m centerclip.train --run-config run.yaml --out-dir DIR``
(several GPUs: ``torchrun --standalone --nproc_per_node=N -m centerclip.train ...``).

Symmetric InfoNCE over the *global* batch similarity matrix, AdamW (betas 0.9/0.98, eps 1e-6,
weight decay on everything but biases, as the original), per-step linear warm-up then
half-cosine to 0, gradient clipping at global norm 1.0, logit scale clamped to
[0.1, ln 100] after each step (REFERENCE §4).

The global batch (``train.batch_size``) is split over ranks and ``train.grad_accum``
micro-batches; each step computes the exact global-batch loss and gradient whatever the split:
- features are all-gathered across ranks with the local block left in the graph; parameter
  gradients are summed over ranks (the logit scale, used by the replicated loss, is not);
- with accumulation (GradCache): a no-grad pass encodes all micro-batches, the loss of the whole
  global batch gives gradients w.r.t. the features, then each micro-batch is re-encoded with
  gradient and back-propagates its block of those feature gradients. Costs one extra forward.
Random token selection (``sparse``) is drawn per micro-batch, so only that method's training
depends on the split.

Mixed precision on GPU (bf16 autocast where supported, else fp16 autocast + GradScaler; fp32
master weights), fp32 on CPU. Writes into DIR: ``last.pt`` (resume state, every epoch and every
``train.checkpoint_every_steps`` steps, atomic), ``checkpoint.pt`` (final weights + run config),
``metrics_epoch{N}.json`` (test metrics after epoch N = 1..epochs, when
``train.eval_every_epoch``), ``train_log.jsonl`` (one line per step) and ``train_summary.json``.
A restarted job resumes from ``last.pt``: data order, frame sampling and random token selection
depend only on (seed, epoch, step), so it ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from centerclip import atomic
from centerclip.data.annotations import read_manifest
from centerclip.data.datasets import VideoTextDataset
from centerclip.distributed import (World, all_gather_objects, all_gather_with_local_grad, barrier,
                                    broadcast_parameters, close_world, init_world, sum_gradients)
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


def micro_batch_size(global_batch: int, world_size: int, grad_accum: int) -> int:
    """Videos per rank and micro-batch; the global batch must split evenly."""
    if grad_accum < 1 or global_batch % (world_size * grad_accum):
        raise TrainingError(f"train.batch_size = {global_batch} does not split over {world_size} ranks x "
                            f"train.grad_accum = {grad_accum} micro-batches: choose a batch_size divisible by "
                            f"{world_size * grad_accum} (or change grad_accum / the number of GPUs)")
    return global_batch // (world_size * grad_accum)


def global_batches(n_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's global batches (dataset indices): a permutation fixed by (seed, epoch), last partial
    batch dropped as the original. Independent of the number of ranks."""
    perm = torch.randperm(n_items, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
    return [perm[i * batch_size:(i + 1) * batch_size] for i in range(n_items // batch_size)]


def micro_seed(seed: int, step: int, micro_index: int) -> int:
    """Seed of the global RNG for one micro-batch (random token selection): (seed, step, micro) only."""
    return int(np.random.SeedSequence([seed, step, micro_index]).generate_state(1)[0])


def choose_precision(device: torch.device) -> tuple[str, torch.dtype | None]:
    if device.type != "cuda":
        return "fp32", None
    if torch.cuda.is_bf16_supported():
        return "bf16 autocast (fp32 master weights)", torch.bfloat16
    return "fp16 autocast + GradScaler (fp32 master weights)", torch.float16


class _Step:
    """One optimisation step over the rank's share of a global batch."""

    def __init__(self, model: RetrievalModel, optimizer: torch.optim.Optimizer, world: World, seed: int,
                 grad_accum: int, grad_clip: float, amp_dtype: torch.dtype | None):
        self.model, self.optimizer, self.world, self.seed = model, optimizer, world, seed
        self.grad_accum, self.grad_clip, self.amp_dtype = grad_accum, grad_clip, amp_dtype
        self.scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        # reached only through local features, so each rank holds part of their gradient
        self.shard_params = [p for n, p in model.named_parameters() if n != "clip.logit_scale"]

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.world.device.type, dtype=self.amp_dtype)

    def _encode(self, micro: dict, step: int, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(micro_seed(self.seed, step, self.world.rank * self.grad_accum + i))
        dev = self.world.device
        with self._autocast():
            t = self.model.encode_text(micro["tokens"].to(dev, non_blocking=True))
            v = self.model.encode_video(micro["video"].to(dev, non_blocking=True),
                                        micro["video_mask"].to(dev, non_blocking=True))
        return t.float(), v.float()

    def _loss(self, t: torch.Tensor, v: torch.Tensor, step: int, video_ids: list[str]) -> torch.Tensor:
        loss = contrastive_loss(self.model.clip.logit_scale.exp() * t @ v.t())
        if not torch.isfinite(loss):  # the loss is replicated: every rank stops here together
            ids = [v for part in all_gather_objects(list(video_ids), self.world) for v in part]
            raise TrainingError(f"loss is {loss.item()} at step {step}; videos of the batch: {ids}")
        return loss

    def _backward(self, x: torch.Tensor) -> None:
        (self.scaler.scale(x) if self.scaler is not None else x).backward()

    def __call__(self, batch: dict, step: int) -> float:
        n = len(batch["video_id"])
        size = n // self.grad_accum
        micros = [{k: batch[k][j * size:(j + 1) * size] for k in ("tokens", "video", "video_mask")}
                  for j in range(self.grad_accum)]
        self.optimizer.zero_grad(set_to_none=True)
        if self.grad_accum == 1:
            t, v = self._encode(micros[0], step, 0)
            loss = self._loss(all_gather_with_local_grad(t, self.world), all_gather_with_local_grad(v, self.world),
                              step, batch["video_id"])
            self._backward(loss)
        else:
            with torch.no_grad():
                feats = [self._encode(m, step, i) for i, m in enumerate(micros)]
            t_all = all_gather_with_local_grad(torch.cat([f[0] for f in feats]), self.world).requires_grad_()
            v_all = all_gather_with_local_grad(torch.cat([f[1] for f in feats]), self.world).requires_grad_()
            loss = self._loss(t_all, v_all, step, batch["video_id"])
            self._backward(loss)  # feature gradients (scaled like the loss) + the logit scale's gradient
            start = self.world.rank * n
            for i, m in enumerate(micros):
                t, v = self._encode(m, step, i)
                rows = slice(start + i * size, start + (i + 1) * size)
                surrogate = (t * t_all.grad[rows]).sum() + (v * v_all.grad[rows]).sum()
                surrogate.backward()
        sum_gradients(self.shard_params, self.world)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        with torch.no_grad():
            self.model.clip.logit_scale.clamp_(LOGIT_SCALE_MIN, LOGIT_SCALE_MAX)
        return loss.item()


def _evaluate_epoch(model: RetrievalModel, cfg: RunConfig, world: World, out_dir: Path, epoch_number: int) -> None:
    """Rank 0 writes metrics_epoch{N}.json for the current weights; the other ranks wait."""
    if world.is_main:
        from centerclip.evaluate import evaluate

        metrics = evaluate(model, cfg, world.device)
        metrics["epoch"] = epoch_number
        atomic.write_json(metrics, out_dir / f"metrics_epoch{epoch_number}.json")
        log.info("epoch %d test: t2v R1 %.2f | v2t R1 %.2f", epoch_number, metrics["t2v"]["R1"],
                 metrics["v2t"]["R1"])
    model.train()
    barrier(world)


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log lines of steps a killed job did after its last checkpoint (they are redone)."""
    if not log_path.is_file():
        return
    lines = [x for x in log_path.read_text().splitlines() if x.strip()]
    keep = [x for x in lines if json.loads(x)["step"] < step]
    if len(keep) != len(lines):
        atomic.write_text("".join(x + "\n" for x in keep), log_path)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


def run(cfg: RunConfig, out_dir: Path, world: World | None = None) -> dict:
    """Train one configuration; returns the training summary (written to DIR by rank 0)."""
    world = world or init_world()
    ts = cfg.train
    device = world.device
    out_dir.mkdir(parents=True, exist_ok=True)
    random.seed(ts.seed)
    np.random.seed(ts.seed)
    torch.manual_seed(ts.seed)

    micro = micro_batch_size(ts.batch_size, world.size, ts.grad_accum)
    per_rank = micro * ts.grad_accum
    dataset = VideoTextDataset(cfg.cache, train_pairs(cfg.manifest), ts.num_frames, ts.context_length,
                               train=True, seed=ts.seed)
    for video_id, reason in dataset.dropped:
        log.warning("training without video %s (bad, listed in the dataset's bad_videos.tsv): %s", video_id, reason)
    if len(dataset) < ts.batch_size:
        raise TrainingError(f"{len(dataset)} training pairs < batch_size {ts.batch_size}: lower train.batch_size")
    steps_per_epoch = len(dataset) // ts.batch_size  # drop the last partial batch, as the original
    total_steps = steps_per_epoch * ts.epochs

    model = RetrievalModel(build_clip(cfg.model), cfg.reduction).to(device)
    optimizer = make_optimizer(model, ts.lr, ts.weight_decay)
    precision, amp_dtype = choose_precision(device)
    train_step = _Step(model, optimizer, world, ts.seed, ts.grad_accum, ts.grad_clip, amp_dtype)
    start_epoch, start_in_epoch, step = 0, 0, 0
    last = out_dir / "last.pt"
    log_path = out_dir / "train_log.jsonl"
    if last.is_file():
        state = torch.load(last, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if train_step.scaler is not None and state.get("scaler"):
            train_step.scaler.load_state_dict(state["scaler"])
        start_epoch, start_in_epoch, step = state["epoch"], state.get("step_in_epoch", 0), state["step"]
        log.info("resumed from %s at epoch %d, step %d", last, start_epoch, step)
        if world.is_main:
            _truncate_log(log_path, step)
    else:
        broadcast_parameters(model, world)
    resumed_at = step
    log.info("world size %d, global batch %d = %d ranks x %d micro-batches x %d videos; precision %s; device %s",
             world.size, ts.batch_size, world.size, ts.grad_accum, micro, precision, device)

    def save_state(epoch: int, in_epoch: int) -> None:
        if world.is_main:
            atomic.save_torch({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scaler": train_step.scaler.state_dict() if train_step.scaler else None,
                               "epoch": epoch, "step_in_epoch": in_epoch, "step": step,
                               "world_size": world.size, "precision": precision}, last)

    if ts.eval_every_epoch and start_epoch > 0 and start_in_epoch == 0 \
            and not (out_dir / f"metrics_epoch{start_epoch}.json").is_file():
        _evaluate_epoch(model, cfg, world, out_dir, start_epoch)  # killed between checkpoint and evaluation

    model.train()
    t_start = time.perf_counter()
    bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True,
               disable=not (world.is_main and sys.stderr.isatty()))
    redirect = logging_redirect_tqdm() if not bar.disable else contextlib.nullcontext()
    with bar, redirect:
        for epoch in range(start_epoch, ts.epochs):
            dataset.set_epoch(epoch)
            first = start_in_epoch if epoch == start_epoch else 0
            local = [b[world.rank * per_rank:(world.rank + 1) * per_rank]
                     for b in global_batches(len(dataset), ts.batch_size, ts.seed, epoch)[first:]]
            loader = DataLoader(dataset, batch_sampler=local, num_workers=ts.num_workers,
                                pin_memory=device.type == "cuda")
            t_prev = time.perf_counter()
            for in_epoch, batch in enumerate(loader, start=first):
                factor = lr_factor(step, total_steps, ts.warmup_fraction)
                for group in optimizer.param_groups:
                    group["lr"] = ts.lr * factor
                try:
                    loss = train_step(batch, step)
                except torch.cuda.OutOfMemoryError:
                    raise TrainingError(
                        f"CUDA out of memory at step {step} with {micro} videos per GPU and micro-batch: set "
                        f"train.grad_accum to {ts.grad_accum * 2} (or more; batch_size {ts.batch_size} must "
                        f"divide by {world.size} GPUs x grad_accum) - the global batch and the loss stay the same"
                    ) from None
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                dt, t_prev = time.perf_counter() - t_prev, time.perf_counter()  # data loading included
                step += 1
                if world.is_main:
                    record = {"epoch": epoch, "step": step - 1, "loss": round(loss, 6), "lr": ts.lr * factor,
                              "videos_per_s": round(ts.batch_size / dt, 2)}
                    with open(log_path, "a") as f:
                        f.write(json.dumps(record) + "\n")
                    log.info("epoch %d step %d/%d loss %.4f lr %.3g %.1f videos/s", epoch, step, total_steps, loss,
                             ts.lr * factor, ts.batch_size / dt)
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}")
                if ts.checkpoint_every_steps and step % ts.checkpoint_every_steps == 0 \
                        and in_epoch + 1 < steps_per_epoch:
                    save_state(epoch, in_epoch + 1)
            save_state(epoch + 1, 0)
            if ts.eval_every_epoch:
                _evaluate_epoch(model, cfg, world, out_dir, epoch + 1)

    peaks = all_gather_objects(round(_peak_memory_mb(device), 1), world)
    summary = {
        "run_id": cfg.run_id,
        "steps": step,
        "epochs": ts.epochs,
        "resumed_at_step": resumed_at,
        "train_seconds_this_job": round(time.perf_counter() - t_start, 2),
        "peak_memory_mb": round(sum(peaks) / len(peaks), 1),  # the paper's "MeM.": mean over devices
        "peak_memory_mb_per_device": peaks,
        "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS",
        "peak_memory_scope": "this job (after a resume: the resumed part only)",
        "precision": precision,
        "seed": ts.seed,
        "world_size": world.size,
        "device_count": world.size if device.type == "cuda" else 0,
        "global_batch": ts.batch_size,
        "train_pairs": len(dataset),
        "train_videos_left_out": [video_id for video_id, _ in dataset.dropped],  # bad videos, see bad_videos.tsv
        "grad_accum": ts.grad_accum,
        "micro_batch_per_device": micro,
        "loss": "symmetric InfoNCE over the global batch (all-gather; GradCache-style when grad_accum > 1)",
        "weight_decay_policy": "all parameters but biases (as the original code)",
        "epoch_metrics": _epoch_metrics(out_dir, ts.epochs) if ts.eval_every_epoch else [],
        "provenance": provenance(device),
    }
    if world.is_main:
        atomic.save_torch({"model": model.state_dict(), "run_config": cfg.raw, "summary": summary},
                          out_dir / "checkpoint.pt")
        atomic.write_json(summary, out_dir / "train_summary.json")
    barrier(world)
    return summary


def _epoch_metrics(out_dir: Path, epochs: int) -> list[dict]:
    out = []
    for n in range(1, epochs + 1):
        path = out_dir / f"metrics_epoch{n}.json"
        if path.is_file():
            m = json.loads(path.read_text())
            out.append({"epoch": n, "t2v": m["t2v"], "v2t": m["v2t"]})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-config", required=True, help="run.yaml written by the workflow")
    parser.add_argument("--out-dir", required=True, help="directory for checkpoints and logs")
    args = parser.parse_args(argv)
    world = None
    try:
        world = init_world()
        logging.basicConfig(level=logging.INFO if world.is_main else logging.WARNING,
                            format=f"%(asctime)s %(name)s[rank {world.rank}] %(message)s", stream=sys.stderr)
        cfg = RunConfig.load(args.run_config)
        run(cfg, Path(args.out_dir), world)
    except (TrainingError, ValueError, KeyError, FileNotFoundError) as exc:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        log.error("%s", exc)
        return 1
    finally:
        if world is not None:
            close_world(world)
    return 0


if __name__ == "__main__":
    sys.exit(main())
