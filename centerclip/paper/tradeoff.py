"""The trade-off figure (beyond the paper): text->video R@1 against the video encoder's GFLOPs per video.

Each experiment whose ``rows`` name ``tradeoff_<series>: "<budget>"`` (e.g. ``tradeoff_kmedoids: "K = 25"``)
is one point of that series; one naming ``tradeoff: "<name>"`` is the reference point (meanP, fine-tuned),
drawn as a star. x is metrics.json's ``efficiency.gflops_per_video`` (counted by the evaluate job, the same
on any machine, so the demo draws it too), y its ``t2v.R1``; several seeds are averaged. Every series is a
line with markers in the order of its GFLOPs, each point labelled with its budget.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from centerclip.paper.figures import _demo_notes, _footer, _save, _title  # noqa: E402

#: The rows key of the reference point; ``tradeoff_<series>`` names a series' points.
FIGURE_KEY = "tradeoff"
#: Legend names of the series the experiment table sweeps (another series is named by its key).
SERIES_NAMES = {"kmedoids": "CenterCLIP, k-medoids++", "spectral": "CenterCLIP, spectral", "pooling": "pooling",
                "sparse": "sparse sampling", "tome": "ToMe"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
FOOTER_WIDTH = 120  # characters of a footer line at 7 pt across the figure's width
# where each series writes its budget labels, in points from the marker: series meeting at one budget (the
# matched GFLOPs) must not print over each other
LABEL_OFFSETS = (((5, 5), "left"), ((5, -11), "left"), ((-5, 5), "right"), ((-5, -11), "right"))
GFLOPS_NOTE = ("GFLOPs: the video encoder's per video, counted with torch's FlopCounterMode at each run's "
               "evaluation shapes (a multiply-add = 2).")


class MissingGflopsError(ValueError):
    """A run's metrics.json has no efficiency.gflops_per_video."""


@dataclass(frozen=True)
class TradeoffPoint:
    """One run of the figure: ``series`` ("" for the reference), its ``label`` (the budget, e.g. "K = 25", or
    the reference's name), the ``experiment`` and its seed-averaged ``gflops`` (x) and T->V ``r1`` (y, %)."""

    series: str
    label: str
    experiment: str
    gflops: float
    r1: float


def tradeoff_rows(experiments: Mapping[str, Mapping]) -> list[tuple[str, str, str]]:
    """(series, label, experiment) of every ``tradeoff`` / ``tradeoff_<series>`` row, in the table's order;
    series "" is the reference."""
    out = []
    for name, exp in experiments.items():
        for key, label in (exp.get("rows") or {}).items():
            if key == FIGURE_KEY:
                out.append(("", str(label), name))
            elif key.startswith(f"{FIGURE_KEY}_"):
                out.append((key.removeprefix(f"{FIGURE_KEY}_"), str(label), name))
    return out


def gflops_of(metrics: Mapping, source: str) -> float:
    """``efficiency.gflops_per_video`` of one metrics.json dict; :class:`MissingGflopsError` naming ``source``
    (its file) when it lacks it."""
    value = (metrics.get("efficiency") or {}).get("gflops_per_video")
    if value is None:
        raise MissingGflopsError(
            f"{source}: no efficiency.gflops_per_video; it was written by an evaluate job that did not count "
            f"GFLOPs: rerun its evaluate job (snakemake --force {source})")
    return float(value)


def tradeoff_points(experiments: Mapping[str, Mapping], metrics: Mapping[str, Sequence[Mapping]],
                    sources: Mapping[str, Sequence[str]] | None = None
                    ) -> tuple[list[TradeoffPoint], list[tuple[str, str, str]]]:
    """The figure's points from ``metrics`` (experiment -> its seeds' metrics.json dicts; ``sources`` names
    their files for error messages), and the rows of ``experiments`` that have none (not run).

    Raises:
        MissingGflopsError: a metrics.json without GFLOPs (the message names the file).
    """
    points, not_run = [], []
    for series, label, name in tradeoff_rows(experiments):
        runs = list(metrics.get(name) or [])
        if not runs:
            not_run.append((series, label, name))
            continue
        files = list((sources or {}).get(name) or [f"metrics.json of {name} (seed {i + 1})" for i in range(len(runs))])
        gflops = [gflops_of(m, str(f)) for m, f in zip(runs, files)]
        points.append(TradeoffPoint(series, label, name, float(np.mean(gflops)),
                                    float(np.mean([float(m["t2v"]["R1"]) for m in runs]))))
    return points, not_run


def _series_name(series: str) -> str:
    return SERIES_NAMES.get(series, series.replace("_", " "))


def _notes(points: Sequence[TradeoffPoint], not_run: Sequence[tuple[str, str, str]],
           experiments: Mapping[str, Mapping], label: str) -> list[str]:
    """Footer lines: which points are training-free (on whose weights), what was not run, how GFLOPs were
    counted, and the demo's caveat."""
    sources = sorted({str(experiments[p.experiment]["training_free"]) for p in points
                      if p.series and experiments.get(p.experiment, {}).get("training_free")})
    lines = []
    if sources:
        lines.append(f"Series points are training-free: each method applied, without training, to the weights of "
                     f"{', '.join(sources)}.")
    if not_run:
        lines.append("Not run: " + "; ".join(f"{_series_name(s) if s else 'reference'} {lab}" for s, lab, _ in not_run)
                     + ".")
    return lines + [GFLOPS_NOTE] + _demo_notes(label)


def plot_tradeoff(points: Sequence[TradeoffPoint], out_png: str | os.PathLike, out_pdf: str | os.PathLike,
                  label: str, notes: Sequence[str] = ()):
    """Draw T->V R@1 (y) against GFLOPs per video (x): one line with markers per series, in the order of its
    GFLOPs, each point labelled with its budget; the reference as a star. Writes PNG and PDF atomically and
    returns the (closed) matplotlib Figure."""
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    # the known series first, in a fixed order: each keeps its colour and marker whichever others have runs
    found = list(dict.fromkeys(p.series for p in points if p.series))
    series = [s for s in SERIES_NAMES if s in found] + [s for s in found if s not in SERIES_NAMES]
    for i, name in enumerate(series):
        ordered = sorted((p for p in points if p.series == name), key=lambda p: p.gflops)
        ax.plot([p.gflops for p in ordered], [p.r1 for p in ordered], marker=MARKERS[i % len(MARKERS)],
                linestyle="-", color=f"C{i}", label=_series_name(name))
        offset, align = LABEL_OFFSETS[i % len(LABEL_OFFSETS)]
        for p in ordered:
            ax.annotate(p.label, (p.gflops, p.r1), textcoords="offset points", xytext=offset, ha=align, fontsize=7,
                        color=f"C{i}")
    for p in (p for p in points if not p.series):
        ax.plot([p.gflops], [p.r1], marker="*", markersize=15, linestyle="none", color="black", label=p.label)
        ax.annotate(p.label, (p.gflops, p.r1), textcoords="offset points", xytext=(-8, -12), ha="right", fontsize=7)
    ax.margins(x=0.08, y=0.1)  # room for the labels beside the outermost points
    if not points:
        ax.text(0.5, 0.5, "no run of this figure has metrics yet", transform=ax.transAxes, ha="center",
                va="center", color="dimgrey")
    ax.set_xlabel("video encoder GFLOPs per video")
    ax.set_ylabel("text → video R@1 (%)")
    ax.grid(alpha=0.3)
    if points:
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(_title("Beyond the paper: R@1 against GFLOPs per video", label), fontsize=10)
    lines = [wrapped for note in notes for wrapped in textwrap.wrap(note, FOOTER_WIDTH)]
    _footer(fig, lines)
    fig.tight_layout(rect=(0, 0.03 + 0.025 * len(lines), 1, 0.95))  # the footer's lines below the axes
    _save(fig, out_png, out_pdf)
    return fig


def render_tradeoff(experiments: Mapping[str, Mapping], metrics_paths: Mapping[str, Sequence[str | os.PathLike]],
                    out_png: str | os.PathLike, out_pdf: str | os.PathLike, label: str):
    """The figure from the metrics.json files of the runs that have them (``metrics_paths``: experiment ->
    its seeds' files); rows of ``experiments`` without any are listed as not run.

    Raises:
        MissingGflopsError: a metrics.json without GFLOPs (the message names the file).
    """
    metrics = {e: [json.loads(Path(p).read_text()) for p in paths] for e, paths in metrics_paths.items()}
    sources = {e: [str(p) for p in paths] for e, paths in metrics_paths.items()}
    points, not_run = tradeoff_points(experiments, metrics, sources)
    return plot_tradeoff(points, out_png, out_pdf, label, _notes(points, not_run, experiments, label))
