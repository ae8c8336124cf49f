"""Render a results table with the paper's numbers beside ours, and its figure.

Each row of a table is one experiment (one run per seed; several seeds are averaged). For
each row the table shows our numbers, the paper's, and the difference ours − paper on the
retrieval columns. Memory and speed are shown as measured but not differenced: the paper's
are V100 GPU numbers, ours come from whatever ran the job (see the provenance in each
metrics.json); their ratio to the table's first (baseline) row is what carries over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

METRIC_COLUMNS = ["t2v_R1", "t2v_R5", "t2v_R10", "t2v_MdR", "t2v_MnR",
                  "v2t_R1", "v2t_R5", "v2t_R10", "v2t_MdR", "v2t_MnR"]
COLUMNS = ["MeM", "Speed"] + METRIC_COLUMNS
HEADERS = {"MeM": "MeM.", "Speed": "Speed ms",
           **{c: c.replace("_R", " R@") if c[-1].isdigit() else c.replace("_", " ") for c in METRIC_COLUMNS}}


def flatten_metrics(metrics: Mapping) -> dict[str, float]:
    """One metrics.json -> {column: value} with MeM in MB (as measured) and Speed in ms per video."""
    row = {f"{d}_{k}": metrics[d][k] for d in ("t2v", "v2t") for k in ("R1", "R5", "R10", "MdR", "MnR")}
    row["MeM"] = metrics.get("train", {}).get("peak_memory_mb", float("nan"))
    row["Speed"] = metrics.get("efficiency", {}).get("eval_ms_per_video", float("nan"))
    return row


def mean_over_seeds(runs: Sequence[Mapping]) -> dict[str, float]:
    rows = pd.DataFrame([flatten_metrics(m) for m in runs])
    return rows.mean().to_dict()


def build_table(experiments: Sequence[tuple[str, str | None]], ours: Mapping[str, Sequence[Mapping]],
                paper_rows: Mapping[str, Sequence[float | None]]) -> pd.DataFrame:
    """Long table: one line per (row, source) with source in ours / paper / diff.

    ``experiments``: (experiment id, paper row name or None) in table order; ``ours``:
    experiment id -> list of metrics dicts (one per seed, may be empty = not run);
    ``paper_rows``: paper row name -> values in COLUMNS order (None = not printed).
    """
    lines = []
    for exp_id, paper_name in experiments:
        label = paper_name or exp_id
        runs = ours.get(exp_id, [])
        mine = mean_over_seeds(runs) if runs else None
        paper = dict(zip(COLUMNS, paper_rows[paper_name])) if paper_name in paper_rows else None
        lines.append({"row": label, "experiment": exp_id, "source": f"ours (n={len(runs)})" if mine else "ours",
                      "note": "" if mine else "not run", **(mine or {})})
        if paper is not None:
            lines.append({"row": label, "experiment": exp_id, "source": "paper", "note": "", **paper})
            if mine:
                diff = {c: (mine[c] - paper[c]) if paper.get(c) is not None else None for c in METRIC_COLUMNS}
                lines.append({"row": label, "experiment": exp_id, "source": "diff", "note": "ours - paper", **diff})
    frame = pd.DataFrame(lines, columns=["row", "experiment", "source", "note"] + COLUMNS)
    baseline = frame[(frame.source.str.startswith("ours")) & (frame.note == "")]
    if not baseline.empty:
        first = baseline.iloc[0]
        frame["MeM_vs_first"] = [(r.MeM / first.MeM) if r.source.startswith("ours") and r.note == "" else None
                                 for r in frame.itertuples()]
    return frame


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def to_markdown(frame: pd.DataFrame, title: str, label: str) -> str:
    cols = ["MeM", "Speed"] + METRIC_COLUMNS
    header = ["Method", "source"] + [HEADERS[c] for c in cols]
    out = [f"# {title}", ""]
    if label == "demo":
        out += ["**Demo numbers**: synthetic twin data and a tiny randomly initialised model on CPU; they show "
                "that the pipeline works, not what CenterCLIP achieves. Paper numbers: ViT-B/32 on real data, "
                "V100 GPUs.", ""]
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in frame.itertuples():
        cells = [r.row if not r.source.startswith(("paper", "diff")) else "", r.source + (f" ({r.note})" if
                 r.note and r.note != "ours - paper" else "")]
        for c in cols:
            v = getattr(r, c)
            if r.source == "diff" and v is not None and not (isinstance(v, float) and math.isnan(v)):
                cells.append(f"{v:+.1f}")
            else:
                cells.append(_fmt(v))
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "MeM.: ours = peak training memory in MB (process RSS on CPU, `max_memory_allocated` on GPU); "
            "paper = GB per V100. Speed: evaluation loop time per video (ms). Ranks are pessimistic on ties."]
    if "MeM_vs_first" in frame:
        ratios = [f"{r.row}: {r.MeM_vs_first:.2f}" for r in frame.itertuples()
                  if r.MeM_vs_first is not None and not math.isnan(r.MeM_vs_first)]
        out += ["", "Our training memory relative to the first row: " + "; ".join(ratios) + "."]
    return "\n".join(out) + "\n"


def plot_table(frame: pd.DataFrame, title: str, path_png: str, chance_r1: float | None = None) -> None:
    """Bar chart of text->video R@1, ours beside the paper's, one group per row; ``chance_r1`` (%)
    draws the R@1 of random ranking on our test set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(dict.fromkeys(frame.row))
    ours = [frame[(frame.row == r) & frame.source.str.startswith("ours")].t2v_R1.iloc[0] for r in rows]
    paper = [(frame[(frame.row == r) & (frame.source == "paper")].t2v_R1.tolist() or [float("nan")])[0]
             for r in rows]
    fig, ax = plt.subplots(figsize=(1.8 + 2.2 * len(rows), 3.6))
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], ours, width=0.4, label="ours")
    ax.bar([i + 0.2 for i in x], paper, width=0.4, label="paper")
    ax.set_xticks(list(x), [r.replace(" (", "\n(", 1) for r in rows], fontsize=7)
    if chance_r1 is not None:
        ax.axhline(chance_r1, color="grey", linestyle="--", linewidth=1, label=f"chance ({chance_r1:.1f}%)")
    ax.set_ylabel("text→video R@1 (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(path_png, dpi=120)
    plt.close(fig)
