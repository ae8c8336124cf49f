"""Stopping a training at a step boundary when the scheduler asks: SIGTERM (``scancel``, preemption,
the wall time) or SIGUSR1 (SLURM's ``--signal`` warning some minutes before the wall time).

While :class:`StopSignals` is active those signals only set a flag; the training loop checks it after
each optimiser step, so a step is never cut in half. With several processes every rank stops after
the same step (:meth:`StopSignals.agreed` takes the maximum over ranks), writes nothing half-done, and
the job exits with :data:`RESUMABLE_EXIT` after rank 0 wrote the resume state ``last.pt``.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import torch
import torch.distributed as dist

from centerclip.training.distributed import World

log = logging.getLogger(__name__)

#: Exit status of a training stopped by a signal after writing its resume state: EX_TEMPFAIL
#: (sysexits.h), "try again later". Rerunning the same command continues from that step.
RESUMABLE_EXIT = 75

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Interrupted(Exception):
    """Training stopped at a step boundary by a signal; the resume state is written."""

    def __init__(self, step: int, signal_name: str):
        super().__init__(f"stopped by {signal_name} after step {step}; the resume state last.pt holds that step: "
                         "rerun the same command to continue from it")
        self.step = step
        self.signal_name = signal_name


class StopSignals:
    """Context manager: SIGTERM / SIGUSR1 set :attr:`received` (the signal's name) instead of ending the
    process; the previous handlers come back on exit. Outside the main thread (where Python cannot
    install handlers) it does nothing."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            log.warning("received %s: stopping after the current step", signal.Signals(signum).name)
        self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def agreed(self, world: World) -> bool:
        """Whether any rank received a stop signal: every rank gets the same answer at the same step."""
        if not world.distributed:
            return self.received is not None
        flag = torch.tensor([1 if self.received else 0], device=world.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.received is None:
            self.received = "a stop signal on another rank"
        return bool(flag.item())
