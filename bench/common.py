"""Shared helpers of the benchmark scripts: machine facts, timing, and the bench/README.md writer.

Imported by ``bench/bench_*.py`` and ``bench/run_all.py`` (``bench/`` is put on ``sys.path``
by each script). Needs only the standard library and torch.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int:
    return os.cpu_count() or 0


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def machine(device: str = "cpu") -> dict:
    """Facts recorded beside every result (JSON and README header)."""
    import torch

    info = {
        "date": now(),
        "device": device,
        "device_name": cpu_model(),
        "cpu": cpu_model(),
        "logical_cores": nproc(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": git_commit(),
    }
    if device == "cuda" and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def header(title_device: str, info: dict, cmd: str, load_start: str, load_end: str) -> list[str]:
    return [
        f"### {info['date']} — device `{title_device}` ({info['device_name']})",
        "",
        f"torch `{info['torch']}`, CPU `{info['cpu']}` ({info['logical_cores']} logical cores), "
        f"`torch.get_num_threads()` = {info['torch_threads']}; commit `{info['commit']}`; command: `{cmd}`; "
        f"load average (1 min) at start / end: {load_start} / {load_end} (shared machine: other jobs "
        "compete for the cores, so absolute times vary run to run)",
        "",
    ]


def command_line() -> str:
    return "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])


def sync(device) -> None:
    import torch

    if getattr(device, "type", device) == "cuda":
        torch.cuda.synchronize()


def time_once(fn, device) -> float:
    """Seconds of one call of ``fn`` (device-synchronised), timed by ``torch.utils.benchmark``
    with the current torch thread count (its Timer defaults to one thread)."""
    import torch
    import torch.utils.benchmark as tbench

    t = tbench.Timer(stmt="fn(); sync()", globals={"fn": fn, "sync": lambda: sync(device)},
                     num_threads=torch.get_num_threads())
    return t.timeit(number=1).times[0]


def interleaved(fns: dict, device, repeats: int) -> dict[str, list[float]]:
    """Time every function ``repeats`` times, round-robin (one warm-up call each first), so that
    a change of machine load hits every setting alike. Returns name -> list of seconds."""
    for fn in fns.values():
        fn()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(time_once(fn, device))
    return times


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def append_section(section: str, intro: str, block: str, readme: Path = README) -> None:
    """Insert ``block`` at the end of the ``section`` ("## ...") of bench/README.md (created with
    ``intro`` if absent), leaving every other section untouched."""
    text = readme.read_text() if readme.exists() else "# Benchmarks\n\n"
    if section not in text:
        text = text.rstrip("\n") + "\n\n" + f"{section}\n\n{intro.rstrip()}\n\n" + block
    else:
        start = text.index(section) + len(section)
        nxt = text.find("\n## ", start)
        end = len(text) if nxt < 0 else nxt + 1
        body = text[:end].rstrip("\n") + "\n\n" + block
        text = body + ("\n" + text[end:] if nxt >= 0 else "")
    readme.write_text(text)


def publish(section: str, intro: str, res: dict, json_path: str | None, readme: bool) -> None:
    """Print a result's Markdown, write the whole result as JSON when asked, and append the
    Markdown to its section of bench/README.md unless told not to."""
    import json

    print()
    print(res["markdown"])
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=1, default=str))
    if readme:
        append_section(section, intro, res["markdown"])
        print(f"appended to {README}")
