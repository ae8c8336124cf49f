"""Where a training stands, its resume state ``last.pt``, and continuing from it.

``last.pt`` records the run identity (:mod:`centerclip.training.identity`) of the settings it was
trained with; one written for other settings (or by an older version, without an identity) is never
resumed: it is moved with the run's files to ``superseded/<UTC time>/`` and training starts at step 0.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from centerclip.training import run_folder
from centerclip.training.distributed import World, all_gather_objects, barrier, broadcast_parameters
from centerclip.training.settings import RunConfig
from centerclip.training.step import TrainStep
from centerclip.util import atomic

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Where training stands: the next epoch, the next batch within it and the global step."""

    epoch: int = 0
    in_epoch: int = 0
    step: int = 0


def _truncate_log(log_path: Path, step: int) -> None:
    """Drop log lines of steps a killed job did after its last checkpoint (they are redone)."""
    if not log_path.is_file():
        return
    lines = [x for x in log_path.read_text().splitlines() if x.strip()]
    keep = [x for x in lines if json.loads(x)["step"] < step]
    if len(keep) != len(lines):
        atomic.write_text("".join(x + "\n" for x in keep), log_path)


def resume_or_start(last: Path, identity: str, train_step: TrainStep, world: World, cfg: RunConfig,
            settings_file: str | None) -> tuple[Progress, str | None]:
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
        return Progress(), set_aside
    train_step.model.load_state_dict(state["model"])
    train_step.optimizer.load_state_dict(state["optimizer"])
    if train_step.scaler is not None and state.get("scaler"):
        train_step.scaler.load_state_dict(state["scaler"])
    progress = Progress(state["epoch"], state.get("step_in_epoch", 0), state["step"])
    log.info("resumed from %s at epoch %d, step %d", last, progress.epoch, progress.step)
    if world.is_main:
        _truncate_log(log_path, progress.step)
    return progress, set_aside


def save_state(last: Path, train_step: TrainStep, world: World, progress: Progress, precision: str,
                identity: str) -> None:
    """Rank 0 writes the resume state ``last.pt`` (weights, optimizer, scaler, where training stands)."""
    if world.is_main:
        atomic.save_torch({"model": train_step.model.state_dict(), "optimizer": train_step.optimizer.state_dict(),
                           "scaler": train_step.scaler.state_dict() if train_step.scaler else None,
                           "epoch": progress.epoch, "step_in_epoch": progress.in_epoch, "step": progress.step,
                           "world_size": world.size, "precision": precision, "run_identity": identity}, last)
