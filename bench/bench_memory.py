"""Benchmark of the peak memory of one training step: baseline meanP vs CenterCLIP vs the reduction baselines.

Usage (from the repository root)::

    .venv/bin/python bench/bench_memory.py [--device cpu|cuda] [--quick] [--videos-b32 N] [--videos-b16 N]
                                           [--videos-anet N] [--b16 kmedoids,...] [--json PATH] [--no-readme]

Each setting of ``bench/settings.py`` runs in a FRESH Python subprocess: build the random-weight
``RetrievalModel`` (train mode), make a batch (random frames, every frame real; random captions of
32 tokens), then one step: forward of texts and videos, the symmetric InfoNCE loss of the
``[B, B]`` logits (``centerclip.training.objective.contrastive_loss``), backward. No optimizer step.

* CPU: peak resident set size. Before the step the process's peak is reset (``echo 5 >
  /proc/self/clear_refs``, Linux >= 4.0) and its current RSS recorded (model, imports, batch);
  after the step the peak (``VmHWM``) is read. **raw** = peak RSS of the step (whole process:
  model + imports + batch + step); **step-only** = that peak minus the RSS before the step
  (activations, gradients, temporaries). Without ``clear_refs`` ``ru_maxrss`` is used instead.
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; raw = the peak,
  step-only = the peak minus ``memory_allocated`` before the step (the model and batch).

Ratios are to the group's baseline. The Markdown table is printed and, unless ``--no-readme``,
appended to ``bench/README.md`` under "## Training step peak memory".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import settings as S  # noqa: E402

SECTION = "## Training step peak memory"
INTRO = (
    "Peak memory of one training step (forward of texts and videos, symmetric InfoNCE, backward; no "
    "optimizer step), random-weight ViT shapes, one fresh subprocess per setting. Produced by "
    "`bench/bench_memory.py`. CPU: peak RSS after resetting the peak just before the step; **raw** = "
    "the whole process's peak (model + imports + batch + step), **step-only** = raw minus the RSS just "
    "before the step (activations, gradients, temporaries). CUDA: `max_memory_allocated`, raw and minus "
    "the memory allocated before the step. Paper (V100, Table 1 and Table 2 MeM. ratios): 0.72 for (B6-4,49), 0.65 for "
    "ActivityNet (B6-12,49), i.e. the raw GPU memory including weights, gradients and optimizer state. "
    "Targets: CPU <= 0.75, GPU <= 0.72, for CenterCLIP (B6-4,49)."
)

SIZES = {"cpu": (4, 2, 2), "cuda": (16, 8, 4), "quick": (2, 2, 2)}
TEXT_LEN = 32
QUICK_KEYS = ("B32_T12_kmedoids_B6-4-49", "B16_T12_kmedoids_B6-4-160", "B32_T60_kmedoids_B6-12-49")


def _rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _hwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def child(args: argparse.Namespace) -> dict:
    """One setting, in this (fresh) process; returns the measurement."""
    import gc

    import torch

    from centerclip.model.clip import CLIP, CLIPConfig
    from centerclip.model.retrieval import RetrievalModel

    try:
        from centerclip.training.objective import contrastive_loss
    except ImportError:  # a machine without the training deps (tqdm...): the same loss, inline
        import torch.nn.functional as F

        def contrastive_loss(logits):
            target = torch.arange(logits.shape[0], device=logits.device)
            return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    s = {x.key: x for x in S.settings(S.ALL)}[args.child]
    backbones = S.QUICK_BACKBONES if args.quick else S.BACKBONES
    torch.manual_seed(0)
    model = RetrievalModel(CLIP(CLIPConfig(**backbones[s.backbone])), s.reduction()).to(device).train()
    b = args.videos
    gen = torch.Generator().manual_seed(0)
    video = torch.randn(b, s.frames, 3, 224, 224, generator=gen).to(device)
    mask = torch.ones(b, s.frames, dtype=torch.bool, device=device)
    tokens = torch.randint(1, 49000, (b, TEXT_LEN), generator=gen)
    tokens[:, 0], tokens[:, -1] = 49406, 49407  # start, end (the largest id: the feature position)
    tokens = tokens.to(device)
    gc.collect()

    method = "cuda max_memory_allocated" if device.type == "cuda" else "VmHWM after clear_refs"
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_kb() * 1024
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            method = "ru_maxrss (peak over the process; clear_refs unavailable)"
    t0 = time.perf_counter()
    logits = model(video, mask, tokens)
    loss = contrastive_loss(logits)
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    elif method.startswith("VmHWM"):
        peak = _hwm_kb() * 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    step_s = time.perf_counter() - t0
    return dict(key=s.key, peak_bytes=peak, before_bytes=before, step_bytes=peak - before, step_s=step_s,
                method=method, loss=float(loss), videos=b, frames=s.frames)


def run(args: argparse.Namespace) -> dict:
    device = args.device
    sizes = SIZES["quick" if args.quick else device]
    rows, n_videos = S.select(args, sizes)
    if args.quick and not args.all_settings:  # smoke run: one reduced row per group, and the baselines
        rows = [s for s in rows if s.method == "meanP" or s.key in QUICK_KEYS]
    threads = args.threads or (1 if args.quick else 0)
    load_start = common.loadavg()
    results, md_rows = [], []
    base: dict[str, dict] = {}
    for s in rows:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", s.key, "--device", device,
               "--videos", str(n_videos[s.group]), "--threads", str(threads)] + (["--quick"] if args.quick else [])
        load = common.loadavg()
        t0 = time.perf_counter()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(common.ROOT), os.environ.get("PYTHONPATH", "")]))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            msg = (proc.stderr.strip().splitlines() or ["no message"])[-1][:200]
            rec = dict(key=s.key, group=s.group, setting=s.label, error=msg)
            results.append(rec)
            md_rows.append(f"| {s.group} | {s.label} | failed: {msg} | | | | | |")
            print(md_rows[-1], flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if s.method == "meanP":
            base[s.group] = r
        b0 = base.get(s.group)
        raw_ratio = r["peak_bytes"] / b0["peak_bytes"] if b0 else float("nan")
        step_ratio = r["step_bytes"] / b0["step_bytes"] if b0 else float("nan")
        flop = S.flop_ratio(s, (S.QUICK_BACKBONES if args.quick else S.BACKBONES)[s.backbone])
        tgt = ""
        if not args.quick and s.group == S.MSRVTT_B32 and s.method == "centerclip" and s.algorithm == "kmedoids":
            lim = 0.75 if device == "cpu" else 0.72
            tgt = (f"<= {lim}: raw {'met' if raw_ratio <= lim else 'NOT met'}, "
                   f"step-only {'met' if step_ratio <= lim else 'NOT met'}")
        rec = dict(r, group=s.group, setting=s.label, raw_ratio=raw_ratio, step_ratio=step_ratio, flop_ratio=flop,
                   process_wall_s=wall, load_at_start=load, target=tgt)
        results.append(rec)
        mib = 2 ** 20
        md_rows.append(
            f"| {s.group} ({r['videos']} videos) | {s.label} | {r['peak_bytes'] / mib:.0f} | {r['before_bytes'] / mib:.0f} | "
            f"{r['step_bytes'] / mib:.0f} | **{raw_ratio:.3f}** | **{step_ratio:.3f}** | {flop:.3f} | {load} | {tgt} |")
        print(md_rows[-1], flush=True)

    info = common.machine(device)
    if threads:
        info["torch_threads"] = threads
    hdr = common.header(device, info, common.command_line(), load_start, common.loadavg())
    if args.quick:
        hdr.append("**--quick smoke run**: narrow model (width 128), not the real ViT shapes.\n")
    method = next((r["method"] for r in results if "method" in r), "n/a")
    hdr += [
        f"Memory in MiB ({method}); one fresh process per row. raw = peak during the step (whole process); "
        "before = resident before the step (model, imports, batch); step-only = raw - before. "
        "FLOP ratio (vision tower, from bench/settings.py) shown for reference.",
        "",
        "| group | setting | raw peak MiB | before MiB | step-only MiB | raw ratio | step-only ratio | FLOP ratio | "
        "load at start | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    block = "\n".join(hdr + md_rows) + "\n"
    return dict(info=info, load_start=load_start, load_end=common.loadavg(), quick=bool(args.quick),
                rows=results, markdown=block)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="narrow model (CI smoke run)")
    p.add_argument("--threads", type=int, default=0, help="torch threads in each child (0: default; --quick: 1)")
    S.add_selection_args(p, "kmedoids", "methods besides the baseline for ViT-B/16")
    p.add_argument("--all-settings", action="store_true", help="with --quick: every setting, not one per group")
    p.add_argument("--timeout", type=float, default=600, help="seconds per child process")
    p.add_argument("--json", default="", help="also write the result as JSON here")
    p.add_argument("--no-readme", action="store_true", help="print only, do not append to bench/README.md")
    # internal: run one setting in this process and print its JSON
    p.add_argument("--child", default="", help=argparse.SUPPRESS)
    p.add_argument("--videos", type=int, default=2, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> dict | None:
    args = parser().parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return None
    res = run(args)
    common.publish(SECTION, INTRO, res, args.json, not args.no_readme)
    return res


if __name__ == "__main__":
    main()
