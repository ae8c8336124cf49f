"""Benchmark of the workflow's planning time: ``snakemake -n`` wall time per config.

Usage (from the repository root)::

    .venv/bin/python bench/bench_dag.py [--repeats 3] [--quick] [--json PATH] [--no-readme]

Runs ``snakemake --cores all -n --nolock [--configfile CONFIG]`` (the Snakemake next to this
Python, in the repository root) for the demo config (``config/config.yaml``) and, when it exists,
the full paper config (``config/paper.yaml``), each ``--repeats`` times under ``/usr/bin/time -v``
(when present; else wall time from ``time.perf_counter``), and reports the median wall time, the
peak RSS and the number of jobs the dry run plans. ``--nolock``: a dry run must not take or
trip over the lock of a workflow running in the same directory. Target: <= 10 s for
the paper config. The table is printed and, unless ``--no-readme``, appended to
``bench/README.md`` under "## Pipeline planning (snakemake -n)".
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

SECTION = "## Pipeline planning (snakemake -n)"
INTRO = (
    "Wall time of a dry run (`snakemake --cores all -n --nolock`) from the repository root: parsing the "
    "Snakefile, config validation and building the whole DAG. Produced by `bench/bench_dag.py`; median of "
    "the repeats, each a fresh process timed by `/usr/bin/time -v`. The time depends on what already "
    "exists under data/ and results/ (a dry run checks every file's state). Target: <= 10 s for "
    "`config/paper.yaml`."
)


def _snakemake() -> str:
    cand = Path(sys.executable).parent / "snakemake"
    return str(cand) if cand.exists() else (shutil.which("snakemake") or "snakemake")


def _elapsed(text: str) -> float | None:
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)
    if not m:
        return None
    parts = [float(x) for x in m.group(1).split(":")]
    s = 0.0
    for x in parts:
        s = s * 60 + x
    return s


def _maxrss_kb(text: str) -> int | None:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return int(m.group(1)) if m else None


def _jobs(text: str) -> int | None:
    m = re.search(r"^total\s+(\d+)", text, re.M)
    if m:
        return int(m.group(1))
    return 0 if "Nothing to be done" in text else None


def one(configfile: str | None, timeout: float) -> dict:
    cmd = [_snakemake(), "--cores", "all", "-n", "--nolock"] + (["--configfile", configfile] if configfile else [])
    timev = Path("/usr/bin/time")
    full = ([str(timev), "-v"] if timev.exists() else []) + cmd
    t0 = time.perf_counter()
    proc = subprocess.run(full, cwd=common.ROOT, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    out = proc.stdout + "\n" + proc.stderr
    return dict(rc=proc.returncode, wall_s=_elapsed(proc.stderr) or wall, perf_counter_s=wall,
                max_rss_kb=_maxrss_kb(proc.stderr), jobs=_jobs(out),
                error=None if proc.returncode == 0 else out.strip().splitlines()[-1][:300] if out.strip() else "?")


def run(args: argparse.Namespace) -> dict:
    configs = [("demo (config/config.yaml)", None)]
    if (common.ROOT / "config" / "paper.yaml").exists() and not args.quick:
        configs.append(("paper (config/paper.yaml)", "config/paper.yaml"))
    load_start = common.loadavg()
    rows, md_rows = [], []
    for name, cf in configs:
        load = common.loadavg()
        runs = [one(cf, args.timeout) for _ in range(args.repeats)]
        ok = [r for r in runs if r["rc"] == 0]
        med = statistics.median(r["wall_s"] for r in runs)
        rss = max((r["max_rss_kb"] or 0) for r in runs)
        jobs = ok[0]["jobs"] if ok else None
        err = next((r["error"] for r in runs if r["rc"] != 0), None)
        tgt = "" if cf is None else f"<= 10 s: {'met' if med <= 10 and not err else 'NOT met'}"
        rec = dict(config=name, configfile=cf, median_wall_s=med, walls_s=[r["wall_s"] for r in runs],
                   max_rss_mib=rss / 1024, jobs=jobs, error=err, load_at_start=load, target=tgt)
        rows.append(rec)
        walls = ", ".join(f"{w:.1f}" for w in rec["walls_s"])
        md_rows.append(f"| {name} | **{med:.1f}** ({walls}) | {rss / 1024:.0f} | {jobs if jobs is not None else '?'} | "
                       f"{load} | {('failed: ' + err) if err else 'ok'} | {tgt} |")
        print(md_rows[-1], flush=True)
    info = common.machine("cpu")
    info["torch_threads"] = "n/a"
    hdr = common.header("cpu", info, common.command_line(), load_start, common.loadavg())
    hdr += [
        f"Snakemake `{subprocess.run([_snakemake(), '--version'], capture_output=True, text=True).stdout.strip()}`.",
        "",
        "| config | wall s: median (each run) | peak RSS MiB | jobs planned | load at start | exit | target |",
        "|---|---|---|---|---|---|---|",
    ]
    block = "\n".join(hdr + md_rows) + "\n"
    return dict(info=info, load_start=load_start, load_end=common.loadavg(), rows=rows, markdown=block)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="demo config only, one run")
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--json", default="")
    p.add_argument("--no-readme", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.quick:
        args.repeats = 1
    res = run(args)
    common.publish(SECTION, INTRO, res, args.json, not args.no_readme)
    return res


if __name__ == "__main__":
    main()
