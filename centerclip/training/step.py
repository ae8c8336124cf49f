"""One optimisation step over the global batch, whatever its split over ranks and micro-batches.

Features are all-gathered across ranks with the local block left in the graph; parameter gradients are
summed over ranks (the logit scale, used by the replicated loss, is not). With accumulation (GradCache)
a no-grad pass encodes all micro-batches, the loss of the whole global batch gives gradients w.r.t. the
features, then each micro-batch is re-encoded with gradient and back-propagates its block of those
feature gradients: one extra forward, the exact global-batch gradient.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from centerclip.model.retrieval import RetrievalModel
from centerclip.training.distributed import World, all_gather_objects, all_gather_with_local_grad, sum_gradients
from centerclip.training.objective import LOGIT_SCALE_MAX, LOGIT_SCALE_MIN, contrastive_loss


class TrainingError(RuntimeError):
    """A training cannot go on; the message says why and what to change."""


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


class TrainStep:
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
