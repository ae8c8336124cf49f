"""Training job: ``python -m centerclip.training.train --run-config run.yaml --out-dir DIR``
(several GPUs: ``torchrun --standalone --nproc_per_node=N -m centerclip.training.train ...``).

The loop over epochs and global batches, per-epoch test metrics, the summary and the CLI. What is
optimised is in :mod:`~centerclip.training.objective` (symmetric InfoNCE over the *global* batch,
AdamW, warm-up then half-cosine), one step over ranks and micro-batches in
:mod:`~centerclip.training.step` (gradient clipping at global norm 1.0, as the original code,
mzhaoshuai/CenterCLIP at commit 886fe73), resuming in :mod:`~centerclip.training.resume`. Random token
selection (``sparse``) is drawn per micro-batch, so only that method's training depends on the split.

Mixed precision on GPU (bf16 autocast where supported, else fp16 autocast + GradScaler; fp32
master weights), fp32 on CPU. Writes into DIR: ``last.pt`` (resume state, every epoch and every
``train.checkpoint_every_steps`` steps, atomic), ``checkpoint.pt`` (final weights + run config),
``metrics_epoch{N}.json`` (test metrics after epoch N = 1..epochs, when
``train.eval_every_epoch``), ``train_log.jsonl`` (one line per step) and ``train_summary.json``.
A restarted job resumes from ``last.pt``: data order, frame sampling and random token selection
depend only on (seed, epoch, step), so it ends with the same weights as an uninterrupted run.
SIGTERM or SIGUSR1 (a scheduler's wall-time warning, ``scancel``, preemption) stops the job after the
step it is in: it writes ``last.pt`` at that step and exits with status 75
(:data:`~centerclip.training.interrupt.RESUMABLE_EXIT`); every rank stops at the same step.

``last.pt`` records the :func:`~centerclip.training.identity.run_identity` of the settings it was trained with. A ``last.pt``
written for other settings (or by an older version, without an identity) is never resumed: it is
moved, with the log, per-epoch metrics, summary and final checkpoint beside it, to
``DIR/superseded/<UTC time>/`` and the run starts from step 0; the summary names that folder
(``resume_state_set_aside``). The summary also records the weights the run started from
(``weights``: file sha256 and the matching OpenAI release, or the random init seed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from centerclip.data.layouts import read_manifest
from centerclip.data.datasets import VideoTextDataset
from centerclip.model.retrieval import RetrievalModel
from centerclip.training.attempts import TRAIN_LOG, check_progress, record_attempt
from centerclip.training.checkpoint import build_clip
from centerclip.training.distributed import World, all_gather_objects, barrier, close_world, init_world
from centerclip.training.identity import pretrained_sha256, run_identity, weights_record
from centerclip.training.interrupt import RESUMABLE_EXIT, Interrupted, StopSignals
from centerclip.training.objective import lr_factor, make_optimizer
from centerclip.training.resume import Progress, resume_or_start, save_state
from centerclip.training.settings import RunConfig
from centerclip.training.step import TrainStep, TrainingError, choose_precision, global_batches, micro_batch_size
from centerclip.util import atomic
from centerclip.util.provenance import peak_rss_mb, provenance

log = logging.getLogger(__name__)


def _weights_sha256(model_cfg: dict, world: World) -> str | None:
    """:func:`pretrained_sha256`, read once by rank 0 and shared with the other ranks."""
    if not model_cfg.get("pretrained"):
        return None
    return all_gather_objects(pretrained_sha256(model_cfg) if world.is_main else None, world)[0]


def train_pairs(manifest_path: str) -> list[tuple[str, str]]:
    m = read_manifest(manifest_path)
    m = m[m.split == "train"]
    if m.empty:
        raise TrainingError(f"{manifest_path}: no training rows")
    return list(zip(m.video_id, m.caption))


def _evaluate_epoch(model: RetrievalModel, cfg: RunConfig, world: World, out_dir: Path, epoch_number: int) -> None:
    """Rank 0 writes metrics_epoch{N}.json for the current weights; the other ranks wait."""
    if world.is_main:
        from centerclip.training.evaluate import evaluate

        metrics = evaluate(model, cfg, world.device)
        metrics["epoch"] = epoch_number
        atomic.write_json(metrics, out_dir / f"metrics_epoch{epoch_number}.json")
        log.info("epoch %d test: t2v R1 %.2f | v2t R1 %.2f", epoch_number, metrics["t2v"]["R1"],
                 metrics["v2t"]["R1"])
    model.train()
    barrier(world)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()


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


def _log_step(log_path: Path, epoch: int, step: int, total: int, loss: float, lr: float, videos_per_s: float) -> None:
    with open(log_path, "a") as f:
        f.write(json.dumps({"epoch": epoch, "step": step - 1, "loss": round(loss, 6), "lr": lr,
                            "videos_per_s": round(videos_per_s, 2)}) + "\n")
    log.info("epoch %d step %d/%d loss %.4f lr %.3g %.1f videos/s", epoch, step, total, loss, lr, videos_per_s)


def _train_epochs(cfg: RunConfig, world: World, dataset: VideoTextDataset, train_step: TrainStep, micro: int,
                  steps_per_epoch: int, progress: Progress, save: Callable[[], None], out_dir: Path,
                  stop: StopSignals) -> None:
    """The epochs from ``progress`` on: one optimiser step per global batch, a log line per step, the
    resume state at epoch ends (and every ``checkpoint_every_steps``), the per-epoch test metrics.
    After a step during which ``stop`` received a signal (on any rank): the resume state of that step,
    then :class:`Interrupted`."""
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
                if stop.agreed(world):
                    last_of_epoch = in_epoch + 1 == steps_per_epoch
                    progress.epoch, progress.in_epoch = (epoch + 1, 0) if last_of_epoch else (epoch, in_epoch + 1)
                    save()  # an epoch's evaluation, if due, is done by the resumed job
                    raise Interrupted(progress.step, stop.received)
                if ts.checkpoint_every_steps and progress.step % ts.checkpoint_every_steps == 0 \
                        and in_epoch + 1 < steps_per_epoch:
                    progress.epoch, progress.in_epoch = epoch, in_epoch + 1
                    save()
            progress.epoch, progress.in_epoch = epoch + 1, 0
            save()
            if ts.eval_every_epoch:
                _evaluate_epoch(train_step.model, cfg, world, out_dir, epoch + 1)


def _summary(cfg: RunConfig, world: World, dataset: VideoTextDataset, micro: int, progress: Progress,
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


def run(cfg: RunConfig, out_dir: Path, world: World | None = None, settings_file: str | None = None,
        stop: StopSignals | None = None, attempt: int = 1) -> dict:
    """Train one configuration; returns the training summary (written to DIR by rank 0).

    ``stop``: an active :class:`~centerclip.training.interrupt.StopSignals`; after a step during which it
    received SIGTERM / SIGUSR1 the resume state is written and :class:`Interrupted` raised. ``attempt``:
    Snakemake's attempt number; a retry that would resume from the step its previous attempt resumed from
    raises :class:`~centerclip.training.attempts.NoProgress` (:mod:`~centerclip.training.attempts`).

    Set-up (data, weights, model, optimizer), resume or start (:func:`~centerclip.training.resume.resume_or_start`), the epochs
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
    train_step = TrainStep(model, make_optimizer(model, ts.lr, ts.weight_decay), world, ts.seed, ts.grad_accum,
                       ts.grad_clip, amp_dtype)
    last = out_dir / "last.pt"
    progress, set_aside = resume_or_start(last, identity, train_step, world, cfg, settings_file)
    resumed_at = progress.step
    check_progress(out_dir, attempt, resumed_at)  # every rank reads the record before rank 0 appends to it
    barrier(world)
    if world.is_main:
        record_attempt(out_dir, attempt, resumed_at)
    log.info("world size %d, global batch %d = %d ranks x %d micro-batches x %d videos; precision %s; device %s",
             world.size, ts.batch_size, world.size, ts.grad_accum, micro, precision, world.device)

    if ts.eval_every_epoch and progress.epoch > 0 and progress.in_epoch == 0 \
            and not (out_dir / f"metrics_epoch{progress.epoch}.json").is_file():
        _evaluate_epoch(model, cfg, world, out_dir, progress.epoch)  # killed between checkpoint and evaluation

    model.train()
    t_start = time.perf_counter()
    _train_epochs(cfg, world, dataset, train_step, micro, steps_per_epoch, progress,
                  lambda: save_state(last, train_step, world, progress, precision, identity), out_dir,
                  stop or StopSignals())
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
    parser.add_argument("--attempt", type=int, default=1,
                        help="Snakemake's attempt number (1 = first try); bounds automatic retries")
    args = parser.parse_args(argv)
    world = None
    try:
        world = init_world()
        log_format = f"%(asctime)s %(name)s[rank {world.rank}] %(message)s"
        logging.basicConfig(level=logging.INFO if world.is_main else logging.WARNING, format=log_format,
                            stream=sys.stderr)
        if world.is_main:  # every attempt's log, kept in the run folder: Snakemake empties {log} before a retry
            Path(args.out_dir).mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(Path(args.out_dir) / TRAIN_LOG)
            handler.setFormatter(logging.Formatter(log_format))
            logging.getLogger().addHandler(handler)
            log.info("attempt %d: %s", args.attempt, " ".join(sys.argv))
        cfg = RunConfig.load(args.run_config)
        # a signal during set-up or the final writes is honoured at the next step boundary, or not at all
        with StopSignals() as stop:
            run(cfg, Path(args.out_dir), world, settings_file=args.run_config, stop=stop, attempt=args.attempt)
    except Interrupted as exc:
        log.warning("%s (exit status %d)", exc, RESUMABLE_EXIT)
        return RESUMABLE_EXIT
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
