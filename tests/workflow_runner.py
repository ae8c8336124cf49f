"""Snakemake started the way a user starts it: the venv's `snakemake` by its full path, from a plain shell.

A plain shell has no virtual environment activated (no VIRTUAL_ENV) and no venv's bin dir on PATH, so
every job the workflow starts must find the venv's Python on its own, as it must for a user who runs
`.venv/bin/snakemake` (the README's commands) or `.venv-cluster/bin/snakemake --profile cluster`.
Every workflow test starts Snakemake through :func:`run_snakemake`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent  # .venv/bin: the venv the tests run in
CLUSTER_VENV_BIN = REPO / ".venv-cluster" / "bin"  # `make cluster-setup`: the venv with the SLURM plugin
GRACE_S = 10  # after the time limit, SIGTERM first (Snakemake cancels its jobs), SIGKILL this much later


def plain_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) as a plain shell has it: VIRTUAL_ENV unset and
    neither venv's bin dir on PATH. Everything else, e.g. a PATH entry holding fake tools, is kept."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k != "VIRTUAL_ENV"}
    venv_bins = {VENV_BIN.resolve(), CLUSTER_VENV_BIN.resolve()}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() not in venv_bins)
    return env


def run_snakemake(*args: str | os.PathLike, cwd: Path = REPO, env: dict[str, str] | None = None, venv_bin: Path = VENV_BIN,
                  timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
    """``<venv_bin>/snakemake *args`` from ``cwd`` (the repository by default, as the README's commands),
    in :func:`plain_env` of ``env``; stdout and stderr captured as text.

    ``timeout`` seconds at most: then Snakemake gets SIGTERM (so it can cancel submitted jobs), and
    SIGKILL :data:`GRACE_S` later. With ``check``, a non-zero exit fails the test with the command and the
    tails of stdout and stderr; with ``check=False`` the caller looks at the returncode itself.
    """
    snakemake = Path(venv_bin) / "snakemake"
    assert snakemake.is_file(), f"{snakemake} does not exist: is the venv built (`make setup`)?"
    cmd = ["timeout", "-k", str(GRACE_S), str(timeout), str(snakemake), *map(str, args)]
    proc = subprocess.run(cmd, cwd=cwd, env=plain_env(env), capture_output=True, text=True,
                          timeout=timeout + GRACE_S + 50)
    if check:
        assert proc.returncode == 0, (
            f"snakemake failed (rc {proc.returncode}{', timed out' if proc.returncode in (124, 137) else ''}):"
            f" {' '.join(cmd[4:])}\n(in {cwd})\n--- stdout (tail) ---\n{proc.stdout[-4000:]}\n"
            f"--- stderr (tail) ---\n{proc.stderr[-6000:]}")
    return proc
