"""Training job: ``python -m centerclip.train --run-config run.yaml --out-dir DIR``
(several GPUs: ``torchrun --standalone --nproc_per_node=N -m centerclip.train ...``).

Symmetric InfoNCE over the *global* batch similarity matrix, AdamW (betas 0.9/0.98, eps 1e-6,
weight decay on everything but biases, as the original), per-step linear warm-up then
half-cosine to 0, gradient clipping at global norm 1.0, logit scale clamped to
[0.1, ln 100] after each step (as the original code, mzhaoshuai/CenterCLIP at commit 886fe73).

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

``last.pt`` records the :func:`run_identity` of the settings it was trained with. A ``last.pt``
written for other settings (or by an older version, without an identity) is never resumed: it is
moved, with the log, per-epoch metrics, summary and final checkpoint beside it, to
``DIR/superseded/<UTC time>/`` and the run starts from step 0; the summary names that folder
(``resume_state_set_aside``). The summary also records the weights the run started from
(``weights``: file sha256 and the matching OpenAI release, or the random init seed).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from centerclip import atomic, run_folder
from centerclip.data.annotations import read_manifest
from centerclip.data.datasets import VideoTextDataset
from centerclip.data.download import file_sha256
from centerclip.data.sources import openai_release
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


# train keys that do not change the trained weights (see run_identity)
RESULT_NEUTRAL_TRAIN_KEYS = ("num_workers", "checkpoint_every_steps", "eval_every_epoch")


def run_identity(raw: dict, weights_sha256: str | None = None) -> str:
    """Hex sha256 naming what a training run computes: a resume state (``last.pt``) is continued only
    by a run with the same identity.

    It hashes the canonical JSON (sorted keys) of the run config ``raw`` without the parts that do
    not change the trained weights, plus ``weights_sha256`` (the pretrained weights file's digest;
    None for a randomly initialised model, whose init settings are in ``raw["model"]``):

    - ``eval``: test-time settings (frames, context length, batch size); training never reads them,
      and the evaluation job recomputes the final metrics with the current ones;
    - ``label``: the name the tables and figures print; training never reads it;
    - ``train.num_workers``: DataLoader processes; data order and frame sampling depend only on
      (seed, epoch, item), not on which process loads them;
    - ``train.checkpoint_every_steps``: how often ``last.pt`` is written; a resumed run ends with the
      same weights as an uninterrupted one;
    - ``train.eval_every_epoch``: whether test metrics are computed after each epoch; evaluation does
      not change the weights, and each step reseeds its random numbers from (seed, step);
    - ``cache``, the folder of ``manifest`` and the ``pretrained`` path: where files lie, not what they
      hold (moving ``data_dir`` retrains nothing); the run id names the dataset, the manifest's file name
      its training list, and ``weights_sha256`` the weights wherever their file moved.

    Everything else (model, reduction, the other train keys, run id) is included, so a changed value,
    an added key or a removed key gives another identity.
    """
    kept = {k: v for k, v in raw.items() if k not in ("eval", "label", "cache")}
    if "manifest" in kept:  # its name says which training list (manifest_7k.csv); its folder does not matter
        kept["manifest"] = os.path.basename(str(kept["manifest"]))
    if isinstance(kept.get("model"), dict) and weights_sha256 is not None:
        kept["model"] = {k: v for k, v in kept["model"].items() if k != "pretrained"}
    if isinstance(kept.get("train"), dict):
        kept["train"] = {k: v for k, v in kept["train"].items() if k not in RESULT_NEUTRAL_TRAIN_KEYS}
    payload = {"run_config": kept, "weights_sha256": weights_sha256}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def weights_record(model_cfg: dict, sha256: str | None) -> dict:
    """The summary's ``weights`` entry: ``{"path", "sha256", "openai"}`` for a ``pretrained`` model
    (``sha256`` of its file), ``{"random": true, "init_seed"}`` for a randomly initialised one."""
    if model_cfg.get("pretrained"):
        return {"path": str(Path(model_cfg["pretrained"]).resolve()), "sha256": sha256,
                "openai": openai_release(sha256) if sha256 else None}
    return {"random": True, "init_seed": int(model_cfg.get("init_seed", 0))}


def pretrained_sha256(model_cfg: dict) -> str | None:
    """Hex sha256 of a ``pretrained`` model's weights file (streamed); None for a random model or a
    missing file (which then fails where the model is built)."""
    path = model_cfg.get("pretrained")
    return file_sha256(path) if path and Path(path).is_file() else None


def config_identity(raw: dict) -> str:
    """:func:`run_identity` of the run config ``raw`` with the weights file now at its ``pretrained`` path."""
    return run_identity(raw, pretrained_sha256(raw.get("model", {})))


def checkpoint_identity(path: str | os.PathLike) -> str | None:
    """The :func:`run_identity` of the training that wrote ``checkpoint.pt`` (or ``last.pt``).

    A checkpoint.pt written before identities were recorded gets the identity of its recorded run
    config with the weights file now at its ``pretrained`` path (assumed unchanged); a last.pt
    without one gets None (never resumed).
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    found = ckpt.get("run_identity") or ckpt.get("summary", {}).get("run_identity")
    if found or "run_config" not in ckpt:
        return found
    return config_identity(ckpt["run_config"])


def _weights_sha256(model_cfg: dict, world: World) -> str | None:
    """:func:`pretrained_sha256`, read once by rank 0 and shared with the other ranks."""
    if not model_cfg.get("pretrained"):
        return None
    return all_gather_objects(pretrained_sha256(model_cfg) if world.is_main else None, world)[0]


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


@dataclass
class _Progress:
    """Where training stands: the next epoch, the next batch within it and the global step."""

    epoch: int = 0
    in_epoch: int = 0
    step: int = 0


def _training_data(cfg: RunConfig, world: World) -> tuple[VideoTextDataset, int, int]:
    """The training pairs (bad videos left out and logged), the videos per device and micro-batch, and
    the steps per epoch (the last partial batch is dropped, as the original)."""
    ts = cfg.train
    micro = micro_batch_size(ts.batch_size, world.size, ts.grad_accum)
    dataset = VideoTextDataset(cfg.cache, train_pairs(cfg.manifest), ts.num_frames, ts.context_length,
                               train=True, seed=ts.seed)
    for video_id, reason in dataset.dropped:
        log.warning("training without video %s (bad, listed in the dataset's bad_videos.tsv): %s", video_id, reason)
    if len(dataset) < ts.batch_size:
        raise TrainingError(f"{len(dataset)} training pairs < batch_size {ts.batch_size}: lower train.batch_size")
    return dataset, micro, len(dataset) // ts.batch_size


def _resume(last: Path, identity: str, train_step: "_Step", world: World, cfg: RunConfig,
            settings_file: str | None) -> tuple[_Progress, str | None]:
    """Load ``last.pt`` when it belongs to these settings (same run identity); otherwise move it and the
    run's files aside and start at step 0. Returns the progress and the folder set aside (or None)."""
    out_dir, log_path = last.parent, last.parent / "train_log.jsonl"
    state = torch.load(last, map_location=world.device, weights_only=False) if last.is_file() else None
    set_aside = None
    if state is not None and state.get("run_identity") != identity:
        barrier(world)  # every rank has read last.pt before rank 0 moves it
        if world.is_main:
            found = state.get("run_identity")
            why = (f"run identity {found[:12]} != {identity[:12]}" if found
                   else "it records no run identity: an older file")
            set_aside = run_folder.set_aside(out_dir, run_folder.run_files(out_dir))
            log.warning("%s does not match %s (%s): not resumed; moved with its log and metrics to %s, training "
                        "from step 0", last, settings_file or f"the run config of {cfg.run_id}", why, set_aside)
        set_aside = all_gather_objects(str(set_aside) if set_aside else None, world)[0]
        state = None
    if state is None:
        broadcast_parameters(train_step.model, world)
        if world.is_main:
            _truncate_log(log_path, 0)  # lines of a job killed before its first checkpoint are redone
        return _Progress(), set_aside
    train_step.model.load_state_dict(state["model"])
    train_step.optimizer.load_state_dict(state["optimizer"])
    if train_step.scaler is not None and state.get("scaler"):
        train_step.scaler.load_state_dict(state["scaler"])
    progress = _Progress(state["epoch"], state.get("step_in_epoch", 0), state["step"])
    log.info("resumed from %s at epoch %d, step %d", last, progress.epoch, progress.step)
    if world.is_main:
        _truncate_log(log_path, progress.step)
    return progress, set_aside


def _save_state(last: Path, train_step: "_Step", world: World, progress: _Progress, precision: str,
                identity: str) -> None:
    """Rank 0 writes the resume state ``last.pt`` (weights, optimizer, scaler, where training stands)."""
    if world.is_main:
        atomic.save_torch({"model": train_step.model.state_dict(), "optimizer": train_step.optimizer.state_dict(),
                           "scaler": train_step.scaler.state_dict() if train_step.scaler else None,
                           "epoch": progress.epoch, "step_in_epoch": progress.in_epoch, "step": progress.step,
                           "world_size": world.size, "precision": precision, "run_identity": identity}, last)


def _log_step(log_path: Path, epoch: int, step: int, total: int, loss: float, lr: float, videos_per_s: float) -> None:
    with open(log_path, "a") as f:
        f.write(json.dumps({"epoch": epoch, "step": step - 1, "loss": round(loss, 6), "lr": lr,
                            "videos_per_s": round(videos_per_s, 2)}) + "\n")
    log.info("epoch %d step %d/%d loss %.4f lr %.3g %.1f videos/s", epoch, step, total, loss, lr, videos_per_s)


def _train_epochs(cfg: RunConfig, world: World, dataset: VideoTextDataset, train_step: "_Step", micro: int,
                  steps_per_epoch: int, progress: _Progress, save: Callable[[], None], out_dir: Path) -> None:
    """The epochs from ``progress`` on: one optimiser step per global batch, a log line per step, the
    resume state at epoch ends (and every ``checkpoint_every_steps``), the per-epoch test metrics."""
    ts, device = cfg.train, world.device
    per_rank = micro * ts.grad_accum
    total_steps = steps_per_epoch * ts.epochs
    bar = tqdm(total=total_steps, initial=progress.step, unit="step", dynamic_ncols=True,
               disable=not (world.is_main and sys.stderr.isatty()))
    redirect = logging_redirect_tqdm() if not bar.disable else contextlib.nullcontext()
    with bar, redirect:
        for epoch in range(progress.epoch, ts.epochs):
            dataset.set_epoch(epoch)
            first = progress.in_epoch if epoch == progress.epoch else 0
            local = [b[world.rank * per_rank:(world.rank + 1) * per_rank]
                     for b in global_batches(len(dataset), ts.batch_size, ts.seed, epoch)[first:]]
            loader = DataLoader(dataset, batch_sampler=local, num_workers=ts.num_workers,
                                pin_memory=device.type == "cuda")
            t_prev = time.perf_counter()
            for in_epoch, batch in enumerate(loader, start=first):
                lr = ts.lr * lr_factor(progress.step, total_steps, ts.warmup_fraction)
                for group in train_step.optimizer.param_groups:
                    group["lr"] = lr
                try:
                    loss = train_step(batch, progress.step)
                except torch.cuda.OutOfMemoryError:
                    raise TrainingError(
                        f"CUDA out of memory at step {progress.step} with {micro} videos per GPU and micro-batch: "
                        f"set train.grad_accum to {ts.grad_accum * 2} (or more; batch_size {ts.batch_size} must "
                        f"divide by {world.size} GPUs x grad_accum) - the global batch and the loss stay the same"
                    ) from None
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                dt, t_prev = time.perf_counter() - t_prev, time.perf_counter()  # data loading included
                progress.step += 1
                if world.is_main:
                    _log_step(out_dir / "train_log.jsonl", epoch, progress.step, total_steps, loss, lr,
                              ts.batch_size / dt)
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{loss:.4f}")
                if ts.checkpoint_every_steps and progress.step % ts.checkpoint_every_steps == 0 \
                        and in_epoch + 1 < steps_per_epoch:
                    progress.epoch, progress.in_epoch = epoch, in_epoch + 1
                    save()
            progress.epoch, progress.in_epoch = epoch + 1, 0
            save()
            if ts.eval_every_epoch:
                _evaluate_epoch(train_step.model, cfg, world, out_dir, epoch + 1)


def _summary(cfg: RunConfig, world: World, dataset: VideoTextDataset, micro: int, progress: _Progress,
             resumed_at: int, set_aside: str | None, identity: str, weights: dict, seconds: float,
             precision: str, out_dir: Path) -> dict:
    """train_summary.json: what ran, how, on which weights, and its peak memory (all ranks)."""
    ts, device = cfg.train, world.device
    peaks = all_gather_objects(round(_peak_memory_mb(device), 1), world)
    return {
        "run_id": cfg.run_id,
        "steps": progress.step,
        "epochs": ts.epochs,
        "resumed_at_step": resumed_at,
        "resume_state_set_aside": set_aside,  # a last.pt of other settings, moved there; null if none
        "run_identity": identity,
        "weights": weights,
        "train_seconds_this_job": round(seconds, 2),
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


def run(cfg: RunConfig, out_dir: Path, world: World | None = None, settings_file: str | None = None) -> dict:
    """Train one configuration; returns the training summary (written to DIR by rank 0).

    Set-up (data, weights, model, optimizer), resume or start (:func:`_resume`), the epochs
    (:func:`_train_epochs`), then checkpoint.pt and train_summary.json. ``settings_file`` (the run
    config's path) only names it in log messages.
    """
    world = world or init_world()
    ts = cfg.train
    out_dir.mkdir(parents=True, exist_ok=True)
    random.seed(ts.seed)
    np.random.seed(ts.seed)
    torch.manual_seed(ts.seed)

    dataset, micro, steps_per_epoch = _training_data(cfg, world)
    weights_sha256 = _weights_sha256(cfg.model, world)
    identity = run_identity(cfg.raw, weights_sha256)
    model = RetrievalModel(build_clip(cfg.model), cfg.reduction).to(world.device)
    precision, amp_dtype = choose_precision(world.device)
    train_step = _Step(model, make_optimizer(model, ts.lr, ts.weight_decay), world, ts.seed, ts.grad_accum,
                       ts.grad_clip, amp_dtype)
    last = out_dir / "last.pt"
    progress, set_aside = _resume(last, identity, train_step, world, cfg, settings_file)
    resumed_at = progress.step
    log.info("world size %d, global batch %d = %d ranks x %d micro-batches x %d videos; precision %s; device %s",
             world.size, ts.batch_size, world.size, ts.grad_accum, micro, precision, world.device)

    if ts.eval_every_epoch and progress.epoch > 0 and progress.in_epoch == 0 \
            and not (out_dir / f"metrics_epoch{progress.epoch}.json").is_file():
        _evaluate_epoch(model, cfg, world, out_dir, progress.epoch)  # killed between checkpoint and evaluation

    model.train()
    t_start = time.perf_counter()
    _train_epochs(cfg, world, dataset, train_step, micro, steps_per_epoch, progress,
                  lambda: _save_state(last, train_step, world, progress, precision, identity), out_dir)
    summary = _summary(cfg, world, dataset, micro, progress, resumed_at, set_aside, identity,
                       weights_record(cfg.model, weights_sha256), time.perf_counter() - t_start, precision, out_dir)
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
        run(cfg, Path(args.out_dir), world, settings_file=args.run_config)
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
