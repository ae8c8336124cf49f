"""The paper's Figures 3-5 from our runs, as PNG and PDF.

* Figure 3: R@1 and training memory vs the block B after which tokens are clustered (LSMDC).
* Figure 4: R@1, training memory and inference time vs the cluster number K and the segment
  number S, on LSMDC and ActivityNet.
* Figure 5: a video's frames with the patches of the kept centre tokens highlighted, for 1, 2, 3
  and more frames per segment.

The paper prints Figures 3 and 4 as plots only (config/paper_numbers.yaml: ``figures: {fig3:
null, fig4: null}``), so only our points are drawn, with the paper's default settings marked.
Demo figures (label "demo") draw no memory or inference-time points: measured on tiny models
sharing a CPU with parallel jobs, they say nothing about CenterCLIP's cost. Those panels plot the
video encoder's GFLOPs per video instead (and, in Figure 4's time panels, the clustering's own
share of them), which are counted, not measured, and the same on any machine; bench/README.md
measures memory and time at the real backbone shapes. Every plot function returns its matplotlib
Figure (already saved and closed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from centerclip.util import atomic  # noqa: E402

NO_PAPER_NUMBERS = "The paper prints this figure without numbers: only our points are shown."
DEMO_NOTE = "demo: tiny model pretrained on synthetic data"
DEMO_FOOTER = ("Demo numbers: a tiny CLIP-shaped model pretrained by the demo on synthetic frames and captions and "
               "fine-tuned for minutes on a CPU.", "They show that the pipeline works, not what CenterCLIP achieves.")
EFFICIENCY_QUANTITIES = {"memory": "training memory", "model_ms": "inference time"}
# what the demo plots in place of each measured quantity: counted GFLOPs (metrics.json efficiency)
DEMO_COUNTED = {"memory": ("gflops", "video encoder GFLOPs per video"),
                "model_ms": ("gflops_clustering", "clustering GFLOPs per video")}
PAPER_DEFAULTS = {"figure3": 6, "lsmdc_K": 49, "activitynet_K": 49, "lsmdc_S": 4, "activitynet_S": 15}
DATASET_NAMES = {"lsmdc": "LSMDC", "activitynet": "ActivityNet"}
COLOURS = {"lsmdc": "C0", "activitynet": "C1"}

Point = tuple[int, "Mapping | None"]


def figure_points(experiments: Mapping[str, Mapping], figure_key: str) -> list[tuple[int, str]]:
    """(x, run id) of every run whose ``rows`` name ``figure_key`` ("figure3", "figure4_lsmdc_K", ...),
    sorted by x; the row value is "B = 6" / "K = 49" / "S = 4"."""
    out = []
    for run_id, exp in experiments.items():
        value = (exp.get("rows") or {}).get(figure_key)
        if value is None:
            continue
        m = re.fullmatch(r"\s*([A-Za-z_]+)\s*=\s*(\d+)\s*", str(value))
        if not m:
            raise ValueError(f"config/experiments.yaml: run {run_id!r} row {figure_key}: {value!r} is not of the "
                             "form 'B = 6' / 'K = 49' / 'S = 4'")
        out.append((int(m.group(2)), run_id))
    return sorted(out)


# ----------------------------------------------------------------------------- helpers


def _title(text: str, label: str) -> str:
    return f"{text} [{DEMO_NOTE}]" if label == "demo" else f"{text} [{label}]" if label else text


def _save(fig, out_png: str | os.PathLike, out_pdf: str | os.PathLike) -> None:
    """Write both files under a temporary name, then rename: a killed job leaves no finished-looking file.

    Both renames wait until both files are drawn, so a failure while drawing the PDF leaves no PNG
    either.
    """
    with atomic.path(out_png) as tmp_png, atomic.path(out_pdf) as tmp_pdf:
        fig.savefig(tmp_png, format="png", dpi=130)
        fig.savefig(tmp_pdf, format="pdf", dpi=130)
    plt.close(fig)


def _value(metrics: Mapping, quantity: str) -> float:
    try:
        if quantity in ("t2v_R1", "v2t_R1"):
            return float(metrics[quantity[:3]]["R1"])
        if quantity == "memory":
            return float(metrics["train"]["peak_memory_mb"])
        if quantity == "model_ms":
            return float(metrics["efficiency"]["model_ms_per_video"])
        if quantity == "gflops":
            return float(metrics["efficiency"]["gflops_per_video"])
        if quantity == "gflops_clustering":
            return float(metrics["efficiency"]["gflops_clustering"])
    except (KeyError, TypeError, ValueError):
        return float("nan")
    raise ValueError(quantity)


def _series(points: Sequence[Point], quantity: str) -> tuple[list[int], list[float]]:
    """Present points, averaged over repeated x (several seeds), sorted by x."""
    by_x: dict[int, list[float]] = {}
    for x, m in points:
        if m is not None:
            by_x.setdefault(int(x), []).append(_value(m, quantity))
    xs = sorted(by_x)
    return xs, [float(np.nanmean(by_x[x])) if not all(np.isnan(by_x[x])) else float("nan") for x in xs]


def _missing(points: Sequence[Point]) -> list[int]:
    present = {int(x) for x, m in points if m is not None}
    return sorted({int(x) for x, m in points if m is None} - present)


def _mark_default(ax, x: int | None, text: str, colour: str = "grey") -> None:
    if x is None:
        return
    ax.axvline(x, color=colour, linestyle=":", linewidth=1.2, label=text)


def _withheld(quantity: str, label: str) -> bool:
    """Demo memory / time points come from tiny models under parallel jobs: not drawn at all."""
    return label == "demo" and quantity in EFFICIENCY_QUANTITIES


def _panel(quantity: str, ylabel: str, label: str) -> tuple[str, str]:
    """(quantity, y label) a panel plots: the demo's counted GFLOPs in place of measured memory / time."""
    return DEMO_COUNTED[quantity] if _withheld(quantity, label) else (quantity, ylabel)


def _demo_notes(label: str) -> list[str]:
    return list(DEMO_FOOTER) if label == "demo" else []


def _counted_notes(label: str) -> list[str]:
    if label != "demo":
        return []
    return ["GFLOPs: counted with torch's FlopCounterMode at the run's evaluation shapes (a multiply-add = 2); "
            "measured memory and time of tiny models under parallel jobs are left out (bench/README.md)."]


def _footer(fig, lines: list[str]) -> None:
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, va="bottom", ha="left", color="dimgrey")


# ----------------------------------------------------------------------------- Figure 3


def plot_figure3(points: Sequence[Point], out_png, out_pdf, label: str):
    """R@1 (T->V, V->T) and training memory vs B. ``points``: (B, metrics.json dict or None = not run)."""
    fig, (ax_r, ax_m) = plt.subplots(1, 2, figsize=(9, 4.0))
    for quantity, style, name in (("t2v_R1", "o-", "text→video"), ("v2t_R1", "s--", "video→text")):
        xs, ys = _series(points, quantity)
        ax_r.plot(xs, ys, style, label=name)
    q_m, ylabel_m = _panel("memory", "peak training memory (MB)", label)
    xs, ys = _series(points, q_m)
    ax_m.plot(xs, ys, "o-", color="C2", label="ours")
    ticks = sorted({int(x) for x, _ in points}) or [PAPER_DEFAULTS["figure3"]]
    for ax, ylabel in ((ax_r, "R@1 (%)"), (ax_m, ylabel_m)):
        ax.set_xlabel("clustering after block B")
        ax.set_ylabel(ylabel)
        ax.set_xticks(ticks)
        ax.grid(alpha=0.3)
        _mark_default(ax, PAPER_DEFAULTS["figure3"], "paper default B = 6")
        ax.legend(fontsize=7)
    ax_r.set_title("(a) R@1 vs B", fontsize=9)
    ax_m.set_title(f"(b) {ylabel_m.split(' (')[0]} vs B", fontsize=9)
    fig.suptitle(_title("Figure 3: Influence of places of token clustering (LSMDC, k-medoids++)", label),
                 fontsize=10)
    notes = [NO_PAPER_NUMBERS] + _demo_notes(label) + _counted_notes(label)
    missing = _missing(points)
    if missing:
        notes.append("Not run (skipped): " + ", ".join(f"B = {b}" for b in missing) + ".")
    _footer(fig, notes)
    fig.tight_layout(rect=(0, 0.07 + 0.02 * len(notes), 1, 0.95))
    _save(fig, out_png, out_pdf)
    return fig


# ----------------------------------------------------------------------------- Figure 4


def plot_figure4(groups: Mapping[str, Sequence[Point]], out_png, out_pdf, label: str):
    """R@1, training memory and inference time (model ms per video) vs K (top row) and vs S (bottom
    row). ``groups`` keyed ``lsmdc_K``, ``lsmdc_S``, ``activitynet_K``, ``activitynet_S``: (x,
    metrics.json dict or None = not run)."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    quantities = (("R1", "R@1 (%)"), ("memory", "peak training memory (MB)"),
                  ("model_ms", "inference time (ms per video, model only)"))
    notes = [NO_PAPER_NUMBERS] + _demo_notes(label) + _counted_notes(label)
    for row, axis in enumerate(("K", "S")):
        for col, (measured, measured_label) in enumerate(quantities):
            ax = axes[row, col]
            ticks: set[int] = set()
            quantity, ylabel = (measured, measured_label) if measured == "R1" else \
                _panel(measured, measured_label, label)
            for dataset, name in DATASET_NAMES.items():
                points = list(groups.get(f"{dataset}_{axis}", []))
                ticks |= {int(x) for x, _ in points}
                colour = COLOURS[dataset]
                if quantity == "R1":
                    for q, style, direction in (("t2v_R1", "o-", "T→V"), ("v2t_R1", "s--", "V→T")):
                        xs, ys = _series(points, q)
                        ax.plot(xs, ys, style, color=colour, label=f"{name} {direction}")
                else:
                    xs, ys = _series(points, quantity)
                    ax.plot(xs, ys, "o-", color=colour, label=name)
                default = PAPER_DEFAULTS[f"{dataset}_{axis}"]
                if axis == "S" or dataset == "lsmdc":  # K = 49 on both datasets: one line
                    text = f"paper default {axis} = {default}" + (f" ({name})" if axis == "S" else "")
                    _mark_default(ax, default, text, colour if axis == "S" else "grey")
                if col == 0:
                    missing = _missing(points)
                    if missing:
                        notes.append(f"{name}: not run (skipped): " + ", ".join(f"{axis} = {x}" for x in missing))
                    if not points:
                        notes.append(f"{name}: no runs for the {axis} sweep")
            ax.set_xlabel("number of clusters K" if axis == "K" else "number of segments S")
            ax.set_ylabel(ylabel)
            if ticks:
                ax.set_xticks(sorted(ticks))
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
            ax.set_title(f"({'abcdef'[row * 3 + col]}) {ylabel.split(' (')[0]} vs {axis}", fontsize=9)
    fig.suptitle(_title("Figure 4: Influence of cluster number K and segment number S (LSMDC, ActivityNet)",
                        label), fontsize=10)
    _footer(fig, notes)
    fig.tight_layout(rect=(0, 0.03 + 0.018 * len(notes), 1, 0.96))
    _save(fig, out_png, out_pdf)
    return fig


# ----------------------------------------------------------------------------- Figure 5


def plot_figure5(frames_uint8: np.ndarray, settings: Sequence[tuple[int, Sequence]], grid: int, patch: int,
                 out_png, out_pdf, label: str, dim: float = 0.25, caption: str | None = None):
    """One row per setting (frames per segment, kept indices per segment — see
    :func:`centerclip.paper.figure5.kept_patches`): the T frames with the kept centre tokens' patches
    at full brightness and every other patch dimmed to ``dim``; frames of one segment share a
    border colour."""
    from centerclip.paper.figure5 import patch_mask

    frames = np.asarray(frames_uint8)
    t, h, w = frames.shape[:3]
    if (h, w) != (grid * patch, grid * patch):
        raise ValueError(f"frames are {h}x{w} but grid {grid} x patch {patch} = {grid * patch}")
    fig, axes = plt.subplots(len(settings), t, figsize=(1.05 * t + 1.2, 1.15 * len(settings) + 0.9),
                             squeeze=False)
    for r, (per, kept) in enumerate(settings):
        if per * len(kept) != t:
            raise ValueError(f"setting {r}: {len(kept)} segments of {per} frames != {t} frames")
        for s, idx in enumerate(kept):
            mask = patch_mask(idx, per, grid)
            for f in range(per):
                i = s * per + f
                full = np.kron(mask[f], np.ones((patch, patch), dtype=bool))[..., None]
                img = np.where(full, frames[i], (frames[i] * dim)).astype(np.uint8)
                ax = axes[r, i]
                ax.imshow(img)
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_edgecolor(f"C{s % 10}")
                    spine.set_linewidth(2.0)
                if r == len(settings) - 1:
                    ax.set_xlabel(f"frame {i + 1}", fontsize=7)
        k = len(kept[0]) if len(kept) else 0
        axes[r, 0].set_ylabel(f"{per} frame{'s' if per > 1 else ''}/segment\nS = {len(kept)}, K = {k}", fontsize=7)
    title = "Figure 5: Centres after token clustering with different numbers of frames per segment"
    fig.suptitle(_title(title, label), fontsize=10)
    _footer(fig, [caption or "Bright patches: kept centre tokens (k-medoids++ medoids); dimmed: dropped. "
                  "Border colour = segment."])
    fig.tight_layout(rect=(0, 0.05, 1, 0.93))
    _save(fig, out_png, out_pdf)
    return fig


def frames_per_segment_settings(num_frames: int, count: int = 4) -> list[int]:
    """The first ``count`` divisors of ``num_frames``: 1, 2, 3, 4 frames per segment for 12 frames."""
    return [d for d in range(1, num_frames + 1) if num_frames % d == 0][:count]


def figure5_from_checkpoint(checkpoint_path, cache_path, video_id: str, out_png, out_pdf, label: str):
    """Figure 5 for one cached video and a training checkpoint of this package: the run's own first
    reduction stage (its algorithm, block B, K and options, read from the checkpoint) with 1, 2, 3, ...
    frames per segment, on the run's evaluation frames."""
    from centerclip.paper.figure5 import kept_patches, load_checkpoint_video, with_segments

    model, cfg, frames_uint8, frames = load_checkpoint_video(checkpoint_path, cache_path, video_id)
    reduction = cfg.reduction
    t = frames.shape[0]
    visual = model.clip.visual
    try:
        settings = [(per, kept_patches(visual, frames, with_segments(reduction, t // per)))
                    for per in frames_per_segment_settings(t)]
    except ValueError as exc:
        raise ValueError(f"{checkpoint_path}: Figure 5 shows kept tokens, but run {cfg.run_id} uses "
                         f"{reduction.method!r}: {exc} (name a clustering run for figure5)") from None
    stage = sorted(reduction.impl.segment_stages(), key=lambda s: s.block)[0]
    kept_per_segment = getattr(stage, "clusters", None) or len(settings[0][1][0])
    name = {"kmedoids": "k-medoids++", "spectral": "spectral clustering"}[stage.algorithm] \
        if reduction.method == "centerclip" else "sparse sampling" if reduction.method == "sparse" \
        else reduction.describe()
    caption = (f"Run {cfg.run_id}, video {video_id}, {t} frames; {name} after block {stage.block}, "
               f"K = {kept_per_segment} per segment (the run's own S = {stage.segments}; all tokens kept where a "
               "segment has ≤ K). Bright: kept centre tokens; dimmed: dropped; border colour = segment.")
    return plot_figure5(frames_uint8, settings, visual.grid, visual.patch_size, out_png, out_pdf, label,
                        caption=caption)
