"""Data-parallel helpers: process-group setup from torchrun's environment, the feature all-gather
with gradients through the local shard, and the gradient sum that makes a step independent of
the number of ranks.

Launch with ``torchrun --standalone --nproc_per_node=N -m centerclip.training.train ...`` (env:// init,
torchrun picks a free port); a plain ``python -m centerclip.training.train`` is a world of one.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(timeout_minutes: int = 60) -> World:
    """Join the process group torchrun describes in the environment (NCCL on GPU, gloo on CPU).

    Each rank uses GPU ``LOCAL_RANK`` when CUDA is available. The generous timeout covers rank 0
    evaluating after an epoch while the others wait at the next collective.
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                               "launch with --nproc_per_node <= the number of GPUs")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://",
                                timeout=datetime.timedelta(minutes=timeout_minutes),
                                **({"device_id": device} if device.type == "cuda" else {}))
    return World(rank, size, local_rank, device)


def close_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_gather_with_local_grad(x: Tensor, world: World) -> Tensor:
    """Concatenate ``x`` [n, ...] of every rank in rank order; this rank's block is ``x`` itself.

    The other ranks' blocks are constants, so a loss of the result differentiates back into the
    local shard only; summing parameter gradients over ranks (:func:`sum_gradients`) then gives
    the gradient of the global-batch loss.
    """
    if not world.distributed:
        return x
    parts = [torch.empty_like(x) for _ in range(world.size)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[world.rank] = x
    return torch.cat(parts)


def sum_gradients(params: Iterable[torch.nn.Parameter], world: World, bucket_mb: float = 64.0) -> None:
    """All-reduce (sum) the gradients of ``params`` over ranks, in flattened buckets.

    Pass only the parameters whose gradient each rank holds partially (those reached through the
    local features); a parameter used directly by the replicated global loss (the logit scale)
    already has its full gradient on every rank and must not be summed.
    """
    if not world.distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    limit = bucket_mb * 2**20
    bucket: list[Tensor] = []
    size = 0
    for g in grads + [None]:
        nbytes = g.numel() * g.element_size() if g is not None else 0
        if g is not None and (not bucket or (g.dtype == bucket[0].dtype and size + nbytes <= limit)):
            bucket.append(g)
            size += nbytes
            continue
        if bucket:
            flat = torch.cat([b.reshape(-1) for b in bucket])
            dist.all_reduce(flat)
            offset = 0
            for b in bucket:
                b.copy_(flat[offset:offset + b.numel()].view_as(b))
                offset += b.numel()
        bucket, size = ([g], nbytes) if g is not None else ([], 0)


def broadcast_parameters(module: torch.nn.Module, world: World) -> None:
    """Make every rank start from rank 0's weights."""
    if not world.distributed:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def all_gather_objects(obj, world: World) -> list:
    if not world.distributed:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
