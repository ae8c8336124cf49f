"""Run the whole benchmark suite (or some items) and check the results against the project's speed and memory targets.

Usage (from the repository root)::

    .venv/bin/python bench/run_all.py [--quick] [--device cpu|cuda] [--items clustering,encoder,...]
                                      [--json PATH] [--md PATH] [--no-readme]

Items, each also runnable alone (``python bench/bench_<item>.py --help``):

1. ``clustering`` — ``bench_clustering.py``: batched k-medoids / spectral vs the row loop;
2. ``encoder``    — ``bench_encoder.py``: visual encoder forward time, ratio to baseline, FLOP ratio;
3. ``memory``     — ``bench_memory.py``: training-step peak memory, one fresh process per setting;
4. ``data``       — ``bench_data.py``: compression frames/s, cache vs decord clips/s, storage choice (CPU only);
5. ``dag``        — ``bench_dag.py``: ``snakemake -n`` wall time (CPU only);
6. ``search``     — ``bench_search.py``: ``centerclip-search`` indexing videos/min (decode vs encode, fp32 vs
   bf16 autocast) and exact query latency / memory at 10k and 1M embeddings vs memory bandwidth (CPU only).

Each item runs in its own subprocess, one after the other, and appends its block to the end of its
item's section under "History" in ``bench/README.md`` (unless ``--no-readme``); an item that fails is
reported and the others still run. After a full CPU run (no ``--quick``, no ``--no-readme``), each
item that ran also replaces its part of the README's "Current numbers" (between the markers
``<!-- current ITEM: begin -->`` and ``<!-- current ITEM: end -->``) with its new block and its
targets; after any other run that part is updated by hand. ``--json`` / ``--md`` write the combined
result (every item's rows, the machine, and a ``targets`` list with met / not met). Exit status 0
when every item ran (targets not met do not fail the run: they are results).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

ITEMS = ("clustering", "encoder", "memory", "data", "dag", "search")
CPU_ONLY = ("data", "dag", "search")


def _item_cmd(item: str, args: argparse.Namespace, json_path: Path) -> list[str]:
    script = str(common.ROOT / "bench" / f"bench_{item}.py")
    cmd = [sys.executable, script, "--json", str(json_path)]
    if args.no_readme:
        cmd.append("--no-readme")
    if item in ("clustering", "encoder", "memory"):
        cmd += ["--device", args.device]
    if args.quick:
        cmd.append("--quick")
        if item == "clustering":
            cmd += ["--min-run-time", "0.2", "--threads", "1"]
    return cmd


def targets(items: dict, device: str, quick: bool) -> list[dict]:
    """The speed and memory targets, each with the measured value and met / not met."""
    out: list[dict] = []

    def add(item, what, value, limit, met, note=""):
        out.append(dict(item=item, target=what, value=value, limit=limit, met=bool(met), note=note))

    c = items.get("clustering", {}).get("rows")
    if c:
        r = c[0]
        if device == "cpu":
            add("clustering", "kmedoids loop / batched >= 20x (CPU)", r["loop_over_batched"], 20,
                r["loop_over_batched"] >= 20,
                f"{r['shape']}; bound on this machine (loop / distance stage alone): {r['loop_over_distances']:.1f}x")
            add("clustering", "spectral kNN / kmedoids <= 3x (CPU)", r["spectral_knn_over_kmedoids"], 3,
                r["spectral_knn_over_kmedoids"] <= 3, r["shape"])
        else:
            add("clustering", "kmedoids loop / batched (GPU, no target)", r["loop_over_batched"], None, True, r["shape"])
        add("clustering", "identical medoids and labels", all(x["identical"] for x in c), True,
            all(x["identical"] for x in c))
    e = items.get("encoder", {}).get("rows")
    if e:
        km = next((x for x in e if x["key"].startswith("B32_T12_kmedoids")), None)
        sp = next((x for x in e if x["key"].startswith("B32_T12_spectral")), None)
        if km and device == "cpu":
            add("encoder", "CenterCLIP (B6-4,49) / baseline <= 0.80 (CPU, ViT-B/32, 12 frames)",
                km["ratio_median"], 0.80, km["ratio_median"] <= 0.80, f"FLOP ratio {km['flop_ratio']:.3f}")
        if km and device == "cuda":
            add("encoder", "k-medoids >= 1.3x faster than baseline (GPU)", 1 / km["ratio_median"], 1.3,
                1 / km["ratio_median"] >= 1.3, f"time ratio {km['ratio_median']:.3f}")
        if sp and device == "cuda":
            add("encoder", "spectral not slower than baseline (GPU)", sp["ratio_median"], 1.0,
                sp["ratio_median"] <= 1.0)
    m = items.get("memory", {}).get("rows")
    if m:
        lim = 0.75 if device == "cpu" else 0.72
        for key, paper in (("B32_T12_kmedoids", 0.72), ("B32_T60_kmedoids_B6-12", 0.65)):
            x = next((r for r in m if r["key"].startswith(key) and "raw_ratio" in r), None)
            if x is None:
                continue
            for kind in ("raw", "step"):
                v = x[f"{kind}_ratio"]
                label = "raw" if kind == "raw" else "step-only"
                tgt_lim = lim if key.startswith("B32_T12") else paper
                add("memory", f"{x['setting']} {x['group']}: {label} peak / baseline <= {tgt_lim}"
                    + ("" if key.startswith("B32_T12") else " (paper value, not a target of ours)"),
                    v, tgt_lim, v <= tgt_lim, f"paper {paper}")
    d = items.get("data")
    if d and "clips_per_s" in d:
        for k in ("raw", "lzf", "gzip"):
            sp = d["speedup_vs_decord"][k]
            add("data", f"cache ({k}) >= 5x decord", sp, 5, sp >= 5)
            add("data", f"cache ({k}) >= 300 clips/s", d["clips_per_s"][k], 300, d["clips_per_s"][k] >= 300)
    g = items.get("dag", {}).get("rows")
    if g:
        for r in g:
            if r["configfile"]:
                add("dag", f"snakemake -n {r['config']} <= 10 s", r["median_wall_s"], 10,
                    r["median_wall_s"] <= 10 and not r["error"])
    if quick:
        for t in out:
            t["note"] = ("--quick smoke run, not a measurement; " + t["note"]).rstrip("; ")
    return out


CURRENT_BEGIN = "<!-- current {item}: begin -->"
CURRENT_END = "<!-- current {item}: end -->"


def _target_cells(t: dict) -> tuple[str, str]:
    v = t["value"]
    vs = f"{v:.3f}" if isinstance(v, float) else str(v)
    return vs + (f" ({t['note']})" if t["note"] else ""), "met" if t["met"] else "**not met**"


def current_markdown(block: str, item_targets: list[dict]) -> str:
    """An item's part of the README's "Current numbers": its newest block, the block's heading made a
    lead line (no Markdown heading may appear there: the item scripts find their History section by
    its "## " heading), then the item's targets with met / not met."""
    lines = block.strip("\n").splitlines()
    if lines and lines[0].startswith("#"):
        lines[0] = "Latest run: **" + lines[0].lstrip("#").strip() + "**"
    if item_targets:
        lines += ["", "| target | latest value | status |", "|---|---|---|"]
        for t in item_targets:
            value, status = _target_cells(t)
            lines.append(f"| {t['target']} | {value} | {status} |")
    return "\n".join(lines)


def update_current(item: str, block: str, item_targets: list[dict], readme: Path = common.README) -> bool:
    """Replace ``item``'s part of "Current numbers" in bench/README.md (between its markers) by
    ``current_markdown(block, item_targets)``. False (README unchanged) when the markers are missing
    or the new text would contain a heading line."""
    if not readme.exists():
        return False
    text = readme.read_text()
    begin, end = CURRENT_BEGIN.format(item=item), CURRENT_END.format(item=item)
    i = text.find(begin)
    j = text.find(end, i + len(begin)) if i >= 0 else -1
    body = current_markdown(block, item_targets)
    if j < 0 or any(line.startswith("#") for line in body.splitlines()):
        return False
    readme.write_text(text[:i + len(begin)] + "\n\n" + body + "\n\n" + text[j:])
    return True


def markdown(res: dict) -> str:
    info = res["info"]
    lines = [
        f"# Benchmark suite — {info['date']} — device `{res['device']}` ({info['device_name']})",
        "",
        f"torch `{info['torch']}`, Python {info['python']}, CPU `{info['cpu']}` ({info['logical_cores']} logical "
        f"cores), commit `{info['commit']}`; load average (1 min) at start / end: {res['load_start']} / "
        f"{res['load_end']}; {'**--quick smoke run**' if res['quick'] else 'full run'}; items: "
        f"{', '.join(res['items'])}; wall {res['wall_s']:.0f} s.",
        "",
        "## Targets",
        "",
        "| item | target | value | met |",
        "|---|---|---|---|",
    ]
    for t in res["targets"]:
        v = t["value"]
        vs = f"{v:.3f}" if isinstance(v, float) else str(v)
        lines.append(f"| {t['item']} | {t['target']} | {vs} | {'met' if t['met'] else 'NOT met'}"
                     f"{' (' + t['note'] + ')' if t['note'] else ''} |")
    for name, err in res["errors"].items():
        lines.append(f"| {name} | did not run | {err} | |")
    for name, item in res["items"].items():
        if "markdown" in item:
            lines += ["", f"## {name}", "", item["markdown"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="small shapes everywhere (CI smoke run)")
    p.add_argument("--items", default="", help=f"comma-separated subset of {','.join(ITEMS)} (default: all; "
                   "on cuda the CPU-only items data and dag are skipped unless named)")
    p.add_argument("--json", default="", help="write the combined result here")
    p.add_argument("--md", default="", help="write the combined Markdown report here")
    p.add_argument("--no-readme", action="store_true",
                   help="do not write bench/README.md (neither History nor Current numbers)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per item")
    args = p.parse_args(argv)
    items = [i for i in args.items.split(",") if i] or [
        i for i in ITEMS if args.device == "cpu" or i not in CPU_ONLY]
    unknown = set(items) - set(ITEMS)
    if unknown:
        p.error(f"unknown items {sorted(unknown)}; choose from {ITEMS}")

    t_start = time.perf_counter()
    load_start = common.loadavg()
    results: dict[str, dict] = {}
    errors: dict[str, str] = {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(x for x in [str(common.ROOT), os.environ.get("PYTHONPATH")] if x))
    with tempfile.TemporaryDirectory(prefix="bench_") as tmp:
        for item in items:
            jp = Path(tmp) / f"{item}.json"
            cmd = _item_cmd(item, args, jp)
            print(f"== {item}: {' '.join(cmd[1:])}  (load {common.loadavg()})", flush=True)
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, env=env, timeout=args.timeout, cwd=common.ROOT)
                rc = proc.returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            if rc == 0 and jp.exists():
                results[item] = json.loads(jp.read_text())
                results[item]["item_wall_s"] = time.perf_counter() - t0
            else:
                errors[item] = f"exit {rc}"
                print(f"== {item} FAILED ({rc})", flush=True)
    res = dict(device=args.device, quick=bool(args.quick), info=common.machine(args.device),
               load_start=load_start, load_end=common.loadavg(), wall_s=time.perf_counter() - t_start,
               items=results, errors=errors, targets=targets(results, args.device, args.quick))
    if not args.no_readme and not args.quick and args.device == "cpu":
        for item, r in results.items():
            if "markdown" not in r:
                continue
            done = update_current(item, r["markdown"], [t for t in res["targets"] if t["item"] == item])
            print(f"== {item}: Current numbers in {common.README} "
                  f"{'updated' if done else 'NOT updated (no markers, or a heading in the block): update it by hand'}", flush=True)
    md = markdown(res)
    print()
    first_item = md.find("\n## ", md.find("## Targets") + 1)
    print(md if first_item < 0 else md[:first_item])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    if args.md:
        Path(args.md).parent.mkdir(parents=True, exist_ok=True)
        Path(args.md).write_text(md)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
