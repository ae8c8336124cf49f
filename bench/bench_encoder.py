"""Benchmark of the visual encoder forward: baseline meanP vs CenterCLIP vs the reduction baselines.

Usage (from the repository root)::

    .venv/bin/python bench/bench_encoder.py [--device cpu|cuda] [--quick] [--repeats N]
                                            [--videos-b32 N] [--videos-b16 N] [--videos-anet N]
                                            [--b16 kmedoids,spectral,...] [--json PATH] [--no-readme]

ViT-B/32 and ViT-B/16 shapes with random weights (``centerclip.model.clip.CLIP(CLIPConfig(...))``), eval
mode, ``torch.no_grad()``; each setting runs ``centerclip.model.video_encoder.encode_segments`` on the same
random batch of videos (``[B, T, 3, 224, 224]``, every frame real). Rows of a group (backbone x
frames) are timed round-robin after one warm-up call each (``torch.utils.benchmark`` with the
process's thread count; on CUDA synchronised), and the median over repeats is divided by the
number of videos. Beside the measured time ratio to the group's baseline is the theoretical FLOP
ratio of ``bench/settings.py`` (token counts; clustering's own cost excluded).

The Markdown table is printed and, unless ``--no-readme``, appended to ``bench/README.md`` under
"## Visual encoder forward".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import common  # noqa: E402
import settings as S  # noqa: E402

SECTION = "## Visual encoder forward"
INTRO = (
    "Time per video of `encode_segments` (inference: eval mode, `torch.no_grad()`, fp32), random-weight "
    "ViT-B/32 and ViT-B/16 shapes, random frames. Produced by `bench/bench_encoder.py`. Rows of a group "
    "share one batch and are timed round-robin (one warm-up each); times are medians (min) of the repeats, "
    "ratios are to the group's baseline meanP. The FLOP ratio counts patch embedding, 6 blocks on "
    "T x (1+P) tokens and 6 blocks on S x (1+K) tokens with the attention's quadratic term, against 12 "
    "blocks on T x (1+P); **clustering's own cost is excluded from it**. Targets: CPU "
    "CenterCLIP (B6-4,49) / baseline <= 0.80 for 8 videos x 12 frames (FLOP limit 0.675); GPU "
    "k-medoids >= 1.3x faster than baseline (ratio <= 0.77), spectral not slower (ratio <= 1.0)."
)

# videos per batch: (B/32 12 frames, B/16 12 frames, B/32 60 frames)
SIZES = {"cpu": (8, 2, 2), "cuda": (32, 16, 8), "quick": (2, 1, 1)}


def targets(s: S.Setting, device: str, ratio: float) -> str:
    if s.group != S.MSRVTT_B32 or s.method != "centerclip":
        return ""
    if device == "cpu" and s.algorithm == "kmedoids":
        return f"<= 0.80: {'met' if ratio <= 0.80 else 'NOT met'}"
    if device == "cuda" and s.algorithm == "kmedoids":
        return f">= 1.3x faster: {'met' if 1 / ratio >= 1.3 else 'NOT met'} ({1 / ratio:.2f}x)"
    if device == "cuda" and s.algorithm == "spectral":
        return f"not slower: {'met' if ratio <= 1.0 else 'NOT met'}"
    return ""


def run(args: argparse.Namespace) -> dict:
    from centerclip.model.clip import CLIP, CLIPConfig
    from centerclip.model.video_encoder import encode_segments

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    if args.threads or args.quick:
        torch.set_num_threads(args.threads or 1)  # --quick: 1 thread (a smoke run must not stall on a busy box)
    backbones = S.QUICK_BACKBONES if args.quick else S.BACKBONES
    sizes = SIZES["quick" if args.quick else device.type]
    rows_all, n_videos = S.select(args, sizes)
    repeats = args.repeats or (2 if args.quick else (10 if device.type == "cuda" else 3))
    groups: dict[str, list[S.Setting]] = {}
    for s in rows_all:
        groups.setdefault(s.group, []).append(s)

    load_start = common.loadavg()
    results = []
    md_rows = []
    models: dict[str, CLIP] = {}
    for group, rows in groups.items():
        bb_name = rows[0].backbone
        if bb_name not in models:
            torch.manual_seed(0)
            models = {bb_name: CLIP(CLIPConfig(**backbones[bb_name])).to(device).eval()}
        visual = models[bb_name].visual
        b, t = n_videos[group], rows[0].frames
        gen = torch.Generator().manual_seed(args.seed)
        video = torch.randn(b, t, 3, 224, 224, generator=gen).to(device)
        mask = torch.ones(b, t, dtype=torch.bool, device=device)

        def make(s: S.Setting):
            red = s.reduction()

            def fn():
                with torch.no_grad():
                    return encode_segments(visual, video, mask, red, training=False)
            return fn

        load_g = common.loadavg()
        times = common.interleaved({s.key: make(s) for s in rows}, device, repeats)
        base = common.median(times[rows[0].key])
        base_min = min(times[rows[0].key])
        for s in rows:
            med, mn = common.median(times[s.key]), min(times[s.key])
            ratio = med / base
            flop = S.flop_ratio(s, backbones[s.backbone])
            tgt = targets(s, device.type, ratio) if not args.quick else ""
            rec = dict(key=s.key, group=group, setting=s.label, videos=b, frames=t,
                       ms_per_video_median=1e3 * med / b, ms_per_video_min=1e3 * mn / b,
                       ratio_median=ratio, ratio_min=mn / base_min, flop_ratio=flop,
                       times_s=times[s.key], target=tgt, load_at_group_start=load_g)
            results.append(rec)
            md_rows.append(
                f"| {group} ({b} videos) | {s.label} | {rec['ms_per_video_median']:.1f} "
                f"({rec['ms_per_video_min']:.1f}) | **{ratio:.3f}** ({rec['ratio_min']:.3f}) | {flop:.3f} | "
                f"{tgt} |")
            print(md_rows[-1], flush=True)

    info = common.machine(device.type)
    hdr = common.header(device.type, info, common.command_line(), load_start, common.loadavg())
    if args.quick:
        hdr.append("**--quick smoke run**: narrow model (width 128), not the real ViT shapes.\n")
    hdr += [
        f"Time per video in ms as median (min) of {repeats} round-robin repeats; ratio to the group's "
        "baseline from medians (from mins); FLOP ratio excludes clustering.",
        "",
        "| group | setting | ms / video | time ratio | FLOP ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    block = "\n".join(hdr + md_rows) + "\n"
    return dict(info=info, load_start=load_start, load_end=common.loadavg(), repeats=repeats,
                quick=bool(args.quick), rows=results, markdown=block)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="narrow model, few videos (CI smoke run)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave default; --quick: 1)")
    p.add_argument("--repeats", type=int, default=0, help="timed calls per setting (0: 3 on CPU, 10 on CUDA)")
    S.add_selection_args(p, "kmedoids,spectral",
                         "methods besides the baseline for ViT-B/16 (kmedoids,spectral,pooling,sparse)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="also write the result as JSON here")
    p.add_argument("--no-readme", action="store_true", help="print only, do not append to bench/README.md")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    res = run(args)
    common.publish(SECTION, INTRO, res, args.json, not args.no_readme)
    return res


if __name__ == "__main__":
    main()
