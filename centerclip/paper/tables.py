"""Render one of the paper's Tables 1-9 with our numbers beside the paper's.

:func:`render_table` takes the transcribed paper numbers (``config/paper_numbers.yaml``), the
experiment table (``config/experiments.yaml``: each run names the paper rows it provides) and
the metrics.json dicts of our runs, and returns the table as a pandas long frame (one line per
paper row and source), Markdown, CSV and a booktabs LaTeX tabular.

Rows follow the paper's order. For each row one of:

* ours: our numbers (mean over seeds, ``mean ± std`` with several seeds), the paper's, and the
  difference ours − paper on the retrieval columns (R@k, MdR, MnR);
* cited: another paper's numbers as this paper prints them (we do not run those methods);
* not run: our run is missing (e.g. a gated dataset was not provided), with the reason.

Memory and speed are shown but never differenced: the paper's are GB / ms on V100 GPUs, ours MB
/ ms on whatever ran the job (see each metrics.json's provenance). What carries over is the
ratio to a reference row (the first of this paper's own rows in the table, per dataset block in
Table 5), given for ours and for the paper. Setting columns (N_in, lr, epochs of Tables 7 and 9)
are the paper's values on every line.

Demo tables (label "demo") leave our memory, speed and their ratios out ("–", NaN in the frame)
and keep the paper's: measured on tiny models sharing a CPU with parallel jobs, ours say nothing
about CenterCLIP's cost, which bench/README.md measures at the real backbone shapes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

METRICS = ("R1", "R5", "R10", "MdR", "MnR")
RETRIEVAL_COLUMNS = [f"{d}_{m}" for d in ("t2v", "v2t") for m in METRICS]
EFFICIENCY_COLUMNS = ("MeM", "Speed")  # measured: withheld from demo tables
GFLOPS = "GFLOPs"  # counted, the same on any machine: every table has it, the demo's too
SETTING_COLUMNS = ("N_in", "lr", "epochs")
BEST_EPOCH = "best_epoch_t2v_R1"
RATIO = {"MeM": "MeM_ratio", "Speed": "Speed_ratio", GFLOPS: "GFLOPs_ratio"}

HEADERS = {
    "MeM": "MeM.", "Speed": "Speed (ms)", "N_in": "N_in", "lr": "lr", "epochs": "epochs",
    **{c: ("T→V " if c.startswith("t2v") else "V→T ") + (f"R@{c[5:]}" if c[4] == "R" and c[5:].isdigit() else c[4:])
       for c in RETRIEVAL_COLUMNS},
    GFLOPS: "GFLOPs", "MeM_ratio": "MeM ÷ ref", "Speed_ratio": "Speed ÷ ref", "GFLOPs_ratio": "GFLOPs ÷ ref",
    "setting": "setting",
    BEST_EPOCH: "best-epoch T→V R@1 (test-selected)",
}
DEMO_NOTE = ("DEMO NUMBERS: our rows come from synthetic twin data and a tiny CLIP-shaped model pretrained by "
             "the demo on synthetic frames and captions and fine-tuned for minutes on a CPU. They show that the "
             "pipeline works, not what CenterCLIP achieves; the differences to the paper are not a reproduction "
             "result.")
DEMO_EFFICIENCY_NOTE = ("Our MeM. and Speed and their '÷ ref' ratios are left out (–) of demo tables: measured on "
                        "tiny models sharing a CPU with parallel jobs, they say nothing about CenterCLIP's cost, "
                        "which bench/README.md measures at the real ViT-B/32 and ViT-B/16 shapes (sections "
                        "'Visual encoder forward' and 'Training step peak memory').")
GFLOPS_NOTE = ("GFLOPs: ours, per test video through the video encoder at the run's evaluation shapes, counted with "
               "torch.utils.flop_counter.FlopCounterMode (a multiply-add = 2 FLOPs; CPU attention, the clustering's "
               "distance matrices and eigendecompositions included; elementwise work, sorting and argmin not "
               "counted; k-medoids' share depends on its iterations, counted on one seeded random video). The paper prints "
               "none; it does not depend on the machine, so demo tables show it too.")
NO_EXPERIMENT = "no experiment of the experiment table provides this row"


@dataclass
class TableResult:
    """A rendered table: ``frame`` (long: one line per paper row and source), and its texts."""

    table_id: str
    frame: pd.DataFrame
    markdown: str
    csv: str
    latex: str


# ----------------------------------------------------------------------------- numbers


def flatten_metrics(metrics: Mapping) -> dict[str, float]:
    """One metrics.json -> {column: value} with MeM in MB (as measured) and Speed in ms per video."""
    row = {f"{d}_{k}": metrics[d][k] for d in ("t2v", "v2t") for k in METRICS}
    row["MeM"] = metrics.get("train", {}).get("peak_memory_mb", float("nan"))
    row["Speed"] = metrics.get("efficiency", {}).get("eval_ms_per_video", float("nan"))
    row[GFLOPS] = metrics.get("efficiency", {}).get("gflops_per_video", float("nan"))
    return row


def setting_text(metrics: Mapping) -> str:
    """The run's token reduction as the method describes itself (e.g. ``k-medoids++ (B6 − 4, 49)``), from the
    run config a metrics.json records; "" where it cannot be read (e.g. a plug-in not imported here)."""
    from centerclip.model.methods import import_plugins
    from centerclip.model.video_encoder import TokenReduction

    run = metrics.get("run_config") or {}
    try:
        import_plugins(run.get("plugins") or [])
        return TokenReduction.from_dict(run.get("reduction") or {}).describe()
    except (ValueError, TypeError, ImportError):
        return ""


def _best_epoch_r1(metrics: Mapping) -> float:
    best = metrics.get("best_epoch_on_test") or {}
    return float(best.get("t2v", {}).get("R1", float("nan")))


def _coverage_note(runs: Sequence[Mapping]) -> str:
    """'' when every run saw the whole test set, else how many test videos were missing (bad videos the
    config allowed to be missing): such numbers are not comparable with the paper's."""
    missing = {v for m in runs for v in (m.get("test_coverage") or {}).get("missing_test_videos", [])}
    n = len(missing)
    return f"test set incomplete: {n} video{'s' if n > 1 else ''} missing" if missing else ""


def departures(runs: Sequence[Mapping], paper_epochs: int | None, paper_global_batch: int | None) -> str:
    """How our runs were trained otherwise than the paper, in a few words ('' when as the paper): other
    weights than OpenAI's released CLIP (from the sha256 each run recorded), another global batch, other
    epochs. Such numbers are ours, but not a reproduction of that row."""
    notes = []
    weights = [m.get("weights") or {} for m in runs]
    if any(w.get("random") for w in weights):
        notes.append("randomly initialised backbone, not OpenAI's CLIP")
    elif any(w and not w.get("openai") for w in weights):
        digests = sorted({str(w.get("sha256", "?"))[:12] for w in weights if not w.get("openai")})
        notes.append(f"weights not OpenAI's (sha256 {', '.join(digests)}…)")
    batches = sorted({m["global_batch"] for m in runs if m.get("global_batch") is not None})
    if paper_global_batch and batches and batches != [paper_global_batch]:
        notes.append(f"global batch {'/'.join(map(str, batches))}, paper {paper_global_batch}")
    epochs = sorted({m["epochs"] for m in runs if m.get("epochs") is not None})
    if paper_epochs and epochs and epochs != [paper_epochs]:
        notes.append(f"{'/'.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''}, paper {paper_epochs}")
    return "; ".join(notes)


def _isnan(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def rows_by_table(experiments: Mapping[str, Mapping], table_id: str) -> dict[str, str]:
    """Paper row name -> run id, for every run whose ``rows`` name a row of ``table_id``."""
    out: dict[str, str] = {}
    for run_id, exp in experiments.items():
        name = (exp.get("rows") or {}).get(table_id)
        if name is None:
            continue
        if name in out:
            raise ValueError(f"config/experiments.yaml: runs {out[name]!r} and {run_id!r} both provide "
                             f"{table_id} row {name!r}; a row is one run")
        out[name] = run_id
    return out


def _block(table_id: str, name: str) -> str:
    """Rows whose ratios share a reference: Table 5 stacks three datasets ('LSMDC: ...')."""
    return name.split(": ", 1)[0] if table_id == "table5" and ": " in name else ""


# ----------------------------------------------------------------------------- the frame


def _our_values(runs: Sequence[Mapping], columns: Sequence[str]) -> dict[str, float]:
    """Mean over seeds of each column (``{col}_std`` too with several seeds) and the mean test-selected
    best-epoch T->V R@1 of the runs' metrics.json dicts."""
    flat = pd.DataFrame([flatten_metrics(m) for m in runs])
    mean, std = flat.mean(), flat.std(ddof=1)
    ours = {c: float(mean[c]) for c in columns if c in mean}
    ours.update({f"{c}_std": float(std[c]) for c in columns if c in std and len(runs) > 1})
    best = [b for b in (_best_epoch_r1(m) for m in runs) if not math.isnan(b)]
    ours[BEST_EPOCH] = sum(best) / len(best) if best else float("nan")
    return ours


def _table_spec(table_id: str, paper: Mapping,
                experiments: Mapping[str, Mapping]) -> tuple[Mapping, list[str], dict[str, str]]:
    """The paper's table ``table_id``, its columns and paper row -> run id; KeyError / ValueError for
    a table the paper lacks or runs naming rows it does not have."""
    tables = paper["tables"]
    if table_id not in tables:
        raise KeyError(f"config/paper_numbers.yaml has no table {table_id!r} (has: {', '.join(tables)})")
    table = tables[table_id]
    columns = list(table.get("columns", paper["columns"]))
    provided = rows_by_table(experiments, table_id)
    if table.get("ours_only"):  # results beyond the paper: the rows are the experiments' own, in their order
        table = {**table, "rows": {name: [None] * len(columns) for name in provided}}
    columns.append(GFLOPS)
    unknown = sorted(set(provided) - set(table["rows"]))
    if unknown:
        raise ValueError(f"config/experiments.yaml names {table_id} rows that config/paper_numbers.yaml does not "
                         f"have: {unknown}; use the paper's row names exactly")
    return table, columns, provided


def _not_run_lines(base: dict, paper_line: dict, run_id: str | None, not_run: Mapping[str, str],
                   settings: dict) -> list[dict]:
    """Our line (with the reason) and the paper's line of a row no metrics.json provides."""
    reason = NO_EXPERIMENT if run_id is None else not_run.get(run_id, "no metrics.json for this run")
    return [{**base, "status": "not run", "run_id": run_id or "", "source": "ours", "n_seeds": 0,
             "note": reason, **settings},
            {**paper_line, "status": "not run", "run_id": run_id or ""}]


def _test_set_sizes(runs: Sequence[Mapping]) -> set[int]:
    """The test-set sizes the runs' metrics.json dicts say they were evaluated on."""
    return {int(m["efficiency"]["n_test_videos"]) for m in runs if (m.get("efficiency") or {}).get("n_test_videos")}


def _training_free_note(runs: Sequence[Mapping]) -> str:
    """'training-free: weights of <run>' for runs that evaluate another run's checkpoint without training."""
    found = (runs[0].get("train") or {}).get("training_free") if runs else None
    if not found:
        return ""
    source = found.get("from_run") or found.get("from") if isinstance(found, Mapping) else found
    return f"training-free: weights of {source}"


def _our_note(runs: Sequence[Mapping], exp: Mapping, paper: Mapping,
              dataset_defaults: Mapping[str, Mapping] | None) -> str:
    """The note of our line: an incomplete test set and how the runs departed from the paper's training."""
    paper_epochs = exp.get("epochs", (dataset_defaults or {}).get(exp["dataset"], {}).get("epochs"))
    return "; ".join(n for n in (_training_free_note(runs), _coverage_note(runs), departures(
        runs, paper_epochs, (paper.get("training") or {}).get("global_batch"))) if n)


def _ours_lines(base: dict, paper_line: dict, theirs: dict, columns: list[str], ours: dict, run_id: str,
                n_seeds: int, note: str) -> list[dict]:
    """The lines ours / paper / diff (ours − paper on the retrieval columns) of a row we ran."""
    diff = {c: ours[c] - theirs[c] for c in columns if c in RETRIEVAL_COLUMNS and not _isnan(theirs[c])}
    return [{**base, "status": "ours", "run_id": run_id, "source": "ours", "n_seeds": n_seeds, "note": note, **ours},
            {**paper_line, "status": "ours", "run_id": run_id},
            {**base, "status": "ours", "run_id": run_id, "source": "diff", "note": "ours − paper", **diff}]


def _lines_frame(lines: list[dict], columns: list[str], settings: list[str]) -> pd.DataFrame:
    """The frame of ``lines``, with the MeM / Speed ratios and the best-epoch column added."""
    value_cols = columns + [f"{c}_std" for c in columns if c not in settings]
    frame = pd.DataFrame(lines, columns=["row", "position", "block", "status", "run_id", "source", "n_seeds", "note"]
                         + value_cols)
    _add_ratios(frame, columns)
    frame[BEST_EPOCH] = [line.get(BEST_EPOCH, float("nan")) for line in lines]
    frame["n_seeds"] = frame["n_seeds"].astype("Int64")
    return frame


def build_frame(table_id: str, paper: Mapping, experiments: Mapping[str, Mapping],
                metrics: Mapping[str, Sequence[Mapping]], not_run: Mapping[str, str] | None = None,
                dataset_defaults: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """Long frame: per paper row (paper order) the lines ours / paper / diff, or paper (cited), or
    ours (not run) + paper. Value columns = the table's columns, ``{col}_std`` for ours, ratios
    to the reference row for MeM / Speed, and the test-selected best-epoch T->V R@1. The note of our
    line says where the test set was incomplete and where the runs departed from the paper's training
    (weights, global batch, epochs: ``dataset_defaults`` gives the paper's epochs per dataset)."""
    table, columns, provided = _table_spec(table_id, paper, experiments)
    cited = set(table.get("cited") or [])
    not_run = dict(not_run or {})
    settings = [c for c in columns if c in SETTING_COLUMNS]

    lines: list[dict] = []
    test_sets: dict[str, set[int]] = {}  # dataset -> the test-set sizes our runs were evaluated on
    ours_only = bool(table.get("ours_only"))
    for position, (name, values) in enumerate(table["rows"].items()):
        theirs = {GFLOPS: None, **dict(zip(columns, values))}
        base = {"row": name, "position": position, "block": _block(table_id, name)}
        paper_line = {**base, "source": "paper", "note": "", **{c: _num(theirs[c]) for c in columns}}
        run_id = provided.get(name)
        runs = list(metrics.get(run_id, []) or []) if run_id else []
        if name in cited and run_id is None:
            lines.append({**paper_line, "status": "cited", "run_id": "",
                          "note": "cited: numbers as printed in the paper"})
        elif not runs:
            lines += _not_run_lines(base, paper_line, run_id, not_run, {c: theirs[c] for c in settings})
        else:
            ours = {**_our_values(runs, columns), **{c: theirs[c] for c in settings}}
            exp = experiments[run_id]
            test_sets.setdefault(exp["dataset"], set()).update(_test_set_sizes(runs))
            ours["setting"] = setting_text(runs[0])
            found = _ours_lines(base, paper_line, theirs, columns, ours, run_id, len(runs),
                                _our_note(runs, exp, paper, dataset_defaults))
            lines += found[:1] if ours_only else found

    if ours_only:  # no paper line to show beside a not-run row
        lines = [line for line in lines if line.get("source") != "paper"]
    frame = _lines_frame(lines, columns, settings)
    frame["setting"] = [line.get("setting", "") for line in lines]
    frame.attrs.update(table_id=table_id, columns=columns, caption=table["caption"], ours_only=ours_only,
                       paper_rows={name: dict(zip(columns, values)) for name, values in table["rows"].items()},
                       test_sets={d: sorted(n) for d, n in test_sets.items()}, paper_test_sets=paper.get("test_videos", {}))
    return frame


def _num(v: object) -> float:
    """Paper cell -> float (NaN for '-' and for text such as OOM)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


def _add_ratios(frame: pd.DataFrame, columns: list[str]) -> None:
    """MeM / Speed / GFLOPs divided by the reference row's (per block): the first of this paper's own rows."""
    own = frame[frame.status != "cited"]
    refs = own.groupby("block", sort=False).row.first().to_dict()
    frame.attrs["reference_rows"] = refs
    for col in (c for c in RATIO if c in columns):
        out = []
        for r in frame.itertuples():
            ref = refs.get(r.block)
            value = getattr(r, col)
            if r.source not in ("ours", "paper") or r.status == "cited" or ref is None or _isnan(value):
                out.append(float("nan"))
                continue
            base = frame[(frame.row == ref) & (frame.source == r.source)][col]
            b = float(base.iloc[0]) if len(base) else float("nan")
            out.append(value / b if b and not math.isnan(b) else float("nan"))
        frame[RATIO[col]] = out


# ----------------------------------------------------------------------------- text


def _fmt_paper(v: object) -> str:
    if _isnan(v):
        return "–"
    if isinstance(v, float) and 0 < abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-")  # 5e-6, as printed
    if isinstance(v, float) and v.is_integer():
        return f"{v:.1f}"
    return repr(v) if isinstance(v, float) else str(v)


def _fmt_ours(col: str, mean: float, std: float) -> str:
    if _isnan(mean):
        return "–"
    if col == GFLOPS:  # tiny demo models count well under 1 GFLOP: significant digits, not decimals
        return f"{mean:.3g}"
    digits = 0 if col == "MeM" else 1
    unit = " MB" if col == "MeM" else ""
    text = f"{mean:.{digits}f}"
    if not _isnan(std):
        text += f" ± {std:.{digits}f}"
    return text + unit


def _cells(r: pd.Series, columns: list[str], extras: list[str], paper_raw: Mapping[str, object]) -> list[str]:
    out = []
    for c in columns:
        v = r[c]
        if c in SETTING_COLUMNS:
            out.append("" if r.source == "diff" else _fmt_paper(paper_raw.get(c)))
        elif r.source == "paper":
            raw = paper_raw.get(c)
            out.append(_fmt_paper(raw) + (" GB" if c == "MeM" and not _isnan(raw) else ""))
        elif r.source == "diff":
            out.append("–" if _isnan(v) else f"{v:+.1f}".replace("-", "−"))
        else:
            out.append(_fmt_ours(c, v, r.get(f"{c}_std", float("nan"))))
    for c in extras:
        v = r[c]
        out.append("–" if _isnan(v) else (f"{v:.2f}" if c in RATIO.values() else f"{v:.1f}"))
    return out


def withhold_our_efficiency(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with our MeM / Speed, their stds and ratios set to NaN; the paper's stay.
    Demo tables use it: tiny models timed under parallel jobs would misstate CenterCLIP's cost."""
    out = frame.copy()
    ours = out.source == "ours"
    columns = [c for c in out.columns if c.split("_")[0] in EFFICIENCY_COLUMNS]  # MeM, MeM_std, MeM_ratio, ...
    out.loc[ours, columns] = float("nan")
    out.attrs = dict(frame.attrs, efficiency_withheld=bool(columns))
    return out


def _source_label(r: pd.Series) -> str:
    if r.status == "cited":
        return "paper (cited)"
    if r.source == "ours" and r.status == "not run":
        return f"ours: not run ({r.note})"
    if r.source == "ours":
        n = int(r.n_seeds)
        return f"ours ({n} seed{'s' if n > 1 else ''}{'; ' + r.note if r.note else ''})"
    return "ours − paper" if r.source == "diff" else "paper"


def _table_name(table_id: str) -> str:
    m = re.fullmatch(r"table(\d+)([a-z]?)", table_id)
    return f"Table {m.group(1)}" + (f"({m.group(2)})" if m.group(2) else "") if m else table_id


def _grid(frame: pd.DataFrame, paper: Mapping) -> tuple[list[str], list[tuple[bool, list[str]]]]:
    """Header and body lines [(starts a new paper row, cells)] shared by Markdown and LaTeX. An ours-only
    table (results beyond the paper) has a setting column (each run's method, as it describes itself)."""
    columns = frame.attrs["columns"]
    extras = [RATIO[c] for c in RATIO if c in columns] + [BEST_EPOCH]
    setting = ["setting"] if frame.attrs.get("ours_only") else []
    header = ["Method", "source"] + [HEADERS[c] for c in setting + columns + extras]
    body, last = [], None
    for _, r in frame.iterrows():
        raw = frame.attrs["paper_rows"][r.row]
        first = r.row != last
        body.append((first, [r.row if first else "", _source_label(r)] + [r[c] for c in setting]
                     + _cells(r, columns, extras, raw)))
        last = r.row
    return header, body


def _headline(table_id: str, label: str, ours_only: bool = False) -> str:
    if ours_only:
        return f"Results beyond the paper — {'demo numbers (synthetic data, tiny model)' if label == 'demo' else label}"
    if label == "demo":
        return (f"{_table_name(table_id)} — demo numbers (synthetic data, tiny model pretrained by the demo), "
                "beside the paper's")
    return f"{_table_name(table_id)} — our reproduction ({label}) beside the paper's numbers"


def _efficiency_footnotes(frame: pd.DataFrame) -> list[str]:
    """What MeM. / Speed / '÷ ref' mean: ours and the paper's, or, where ours are withheld, the paper's and why."""
    refs = "; ".join(f"{b}: {r}" if b else r for b, r in frame.attrs["reference_rows"].items())
    if frame.attrs.get("efficiency_withheld"):
        return ["MeM.: the paper's peak training memory in GB per V100. Speed: the paper's evaluation time per "
                f"video in ms on a V100. '÷ ref' is the paper's ratio to the reference row ({refs}).",
                DEMO_EFFICIENCY_NOTE]
    return ["MeM.: ours = peak training memory in MB (process RSS on CPU, max_memory_allocated on GPU); "
            "paper = GB per V100. Speed: evaluation time per video in ms (ours: whatever device ran the "
            "job; paper: V100). Neither is differenced; '÷ ref' is the ratio to the reference row "
            f"({refs}), for ours and for the paper, and is what carries over."]


def _test_set_note(ours: Mapping[str, Sequence[int]], paper: Mapping[str, int]) -> str:
    """'Test sets of our runs: activitynet 4869 videos (the paper's: 4869); ...', flagging a size that differs."""
    parts = []
    for dataset, sizes in ours.items():
        text = f"{dataset} {' / '.join(str(n) for n in sizes)} videos"
        if dataset in paper:
            same = sizes == [paper[dataset]]
            text += f" (the paper's: {paper[dataset]}{'' if same else '; R@k not comparable where the sizes differ'})"
        parts.append(text)
    return "Test sets of our runs: " + "; ".join(parts) + "."


def _footnotes(frame: pd.DataFrame) -> list[str]:
    columns = frame.attrs["columns"]
    notes = []
    if frame.attrs.get("ours_only") and frame.attrs.get("efficiency_withheld"):
        notes.append(DEMO_EFFICIENCY_NOTE)  # no paper numbers to describe
    elif "MeM" in columns or "Speed" in columns:
        notes += _efficiency_footnotes(frame)
    notes.append(GFLOPS_NOTE + " '÷ ref' of GFLOPs: ours divided by the reference row's.")
    if any(c in SETTING_COLUMNS for c in columns):
        notes.append("Setting columns (" + ", ".join(c for c in columns if c in SETTING_COLUMNS)
                     + ") are the paper's values on every line.")
    ours_notes = frame.loc[frame.source == "ours", "note"].astype(str)
    if ours_notes.str.contains(", paper |weights not OpenAI|randomly initialised").any():
        notes.append("A note such as 'global batch 8, paper 128', 'weights not OpenAI's' or 'randomly initialised "
                     "backbone' on our line: that run was trained otherwise than the paper (from the settings and the "
                     "sha256 of the weights it recorded). Its numbers are ours, not a reproduction of the row.")
    if frame.attrs.get("test_sets"):
        notes.append(_test_set_note(frame.attrs["test_sets"], frame.attrs.get("paper_test_sets") or {}))
    if frame.attrs.get("ours_only"):
        notes.append("No paper numbers: these settings are not in the paper. Ours = last-epoch model, mean ± std "
                     "over seeds when there are several; a training-free row evaluates another run's weights.")
    else:
        notes.append("ours − paper: differences on the retrieval columns (R@k in points, MdR/MnR in ranks). "
                     "Ours = last-epoch model, mean ± std over seeds when there are several.")
    notes.append("best-epoch T→V R@1 (test-selected): the original code's protocol, choosing the epoch with the "
                 "best T→V R@1 on the test split itself (optimistic); shown beside, never instead of, ours.")
    if not frame.attrs.get("ours_only"):
        notes.append("cited: another paper's numbers as printed in this paper; not run here.")
    return notes


def to_markdown(frame: pd.DataFrame, paper: Mapping, label: str) -> str:
    table_id = frame.attrs["table_id"]
    out = [f"# {_headline(table_id, label, frame.attrs.get('ours_only', False))}", ""]
    if label == "demo":
        out += [f"**{DEMO_NOTE}**", ""]
    out += [f"> {frame.attrs['caption']}", ""]
    header, body = _grid(frame, paper)
    esc = lambda s: s.replace("|", "\\|")  # noqa: E731
    out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(esc(c) for c in cells) + " |" for _, cells in body]
    out += [""] + [f"- {n}" for n in _footnotes(frame)]
    return "\n".join(out) + "\n"


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "−": "$-$", "±": r"$\pm$",
          "→": r"$\to$", "↔": r"$\leftrightarrow$", "ℓ": r"$\ell$", "÷": r"$\div$", "×": r"$\times$",
          "–": "--", "—": "---"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(frame: pd.DataFrame, paper: Mapping, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); written by hand, no jinja2."""
    table_id = frame.attrs["table_id"]
    header, body = _grid(frame, paper)
    demo_notes = [DEMO_NOTE] + ([DEMO_EFFICIENCY_NOTE] if frame.attrs.get("efficiency_withheld") else [])
    # LaTeX carries no footnotes: the demo's notes ride in the caption, so a "–" cell is never unexplained
    caption = frame.attrs["caption"] + (f" [{' '.join(demo_notes)}]" if label == "demo" else "")
    out = [f"% {_headline(table_id, label, frame.attrs.get('ours_only', False))}", r"\begin{table*}[t]", r"\centering", r"\scriptsize",
           rf"\caption{{{latex_escape(caption)}}}", rf"\label{{tab:{table_id}}}",
           r"\begin{tabular}{ll" + "r" * (len(header) - 2) + "}", r"\toprule",
           " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    for i, (first, cells) in enumerate(body):
        if first and i:
            out.append(r"\addlinespace")
        out.append(" & ".join(latex_escape(c) for c in cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return "\n".join(out) + "\n"


def render_table(table_id: str, paper: Mapping, experiments: Mapping[str, Mapping],
                 metrics: Mapping[str, Sequence[Mapping]], label: str,
                 not_run: Mapping[str, str] | None = None,
                 dataset_defaults: Mapping[str, Mapping] | None = None) -> TableResult:
    """Table ``table_id`` of the paper with our numbers: see the module docstring.

    ``paper``: parsed config/paper_numbers.yaml; ``experiments``: the ``experiments`` mapping of
    config/experiments.yaml; ``metrics``: run id -> metrics.json dicts (one per seed; empty or
    missing = not run); ``label``: the config's label ("demo" marks demo numbers and leaves our
    MeM / Speed out); ``not_run``: run id -> why it did not run; ``dataset_defaults``: the
    experiment table's per-dataset settings.
    """
    frame = build_frame(table_id, paper, experiments, metrics, not_run, dataset_defaults)
    if label == "demo":
        frame = withhold_our_efficiency(frame)
    return TableResult(table_id=table_id, frame=frame, markdown=to_markdown(frame, paper, label),
                       csv=frame.to_csv(index=False), latex=to_latex(frame, paper, label))
