"""The authors' released checkpoints in the workflow: their list, their download, and the table of
the R@1 they report beside the R@1 this package measures with the same weights.

The list (``config/released_checkpoints.yaml``) is data: a URL pattern with ``{id}`` and, per
checkpoint id, the dataset format it was trained on, its test split in words, and the authors'
text->video and video->text R@1 (original repository README, "Checkpoints").
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from centerclip.paper.tables import DEMO_NOTE, latex_escape

log = logging.getLogger(__name__)

ENTRY_KEYS = {"format": str, "test": str, "test_videos": int, "t2v_R1": (int, float), "v2t_R1": (int, float)}


class CheckpointListError(ValueError):
    """The checkpoint list is malformed; the message names the file and key."""


def read_checkpoint_list(path: str | os.PathLike) -> dict[str, Any]:
    """``{"url": pattern with {id}, "checkpoints": {id: {format, test, test_videos, t2v_R1, v2t_R1}}}`` from ``path``."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CheckpointListError(f"{path}: cannot be read ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("checkpoints"), dict) or not data["checkpoints"]:
        raise CheckpointListError(f"{path}: expected `url:` and a non-empty `checkpoints:` mapping")
    if "{id}" not in str(data.get("url", "")):
        raise CheckpointListError(f"{path}: url must be a pattern containing {{id}}, got {data.get('url')!r}")
    for cid, entry in data["checkpoints"].items():
        for key, kind in ENTRY_KEYS.items():
            if not isinstance(entry, dict) or not isinstance(entry.get(key), kind):
                raise CheckpointListError(f"{path}: checkpoints.{cid}.{key} is missing or not a "
                                          f"{getattr(kind, '__name__', 'number')}")
    return data


def download_checkpoint(url: str, dst: str | os.PathLike, *, digest_manifest: str | os.PathLike,
                        **download_kw: Any) -> Path:
    """Download a released zip (resumable; sha256 recorded in ``digest_manifest`` on the first
    download and verified on every later one, as the datasets' archives) and test its members' CRCs:
    a zip that fails is deleted, so the next run downloads it again."""
    from centerclip.data.digests import DownloadError
    from centerclip.data.fetch import download

    dst = download(url, dst, digest_manifest=digest_manifest, progress=False, **download_kw)
    try:
        with zipfile.ZipFile(dst) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        bad = f"not a zip ({exc})"
    if bad is not None:
        dst.unlink()
        raise DownloadError(f"{url}: the downloaded zip is corrupt (member {bad}); deleted {dst}, run again "
                            f"to download it anew (if the file changed at the source, delete its line in "
                            f"{digest_manifest})", url=url)
    return dst


@dataclass
class ReleasedTable:
    frame: pd.DataFrame
    markdown: str
    csv: str
    latex: str


COLUMNS = ["checkpoint", "dataset", "test", "setting", "frames", "words",
           "t2v_R1_authors", "t2v_R1_ours", "t2v_R1_diff", "v2t_R1_authors", "v2t_R1_ours", "v2t_R1_diff",
           "n_test_videos", "original_test_videos", "status", "note"]
HEADER = ["checkpoint", "test split", "setting (from its hparams)", "frames / words",
          "T→V R@1 authors", "T→V R@1 ours", "Δ", "V→T R@1 authors", "V→T R@1 ours", "Δ", "test videos (ours / original)", "note"]


def _row(cid: str, entry: Mapping, dataset: str | None, metrics: Mapping | None, reason: str | None) -> dict:
    row = {"checkpoint": cid, "dataset": dataset, "test": entry["test"], "t2v_R1_authors": entry["t2v_R1"],
           "v2t_R1_authors": entry["v2t_R1"], "original_test_videos": entry["test_videos"]}
    if metrics is None:
        return {**row, "status": "not run", "note": f"not run: {reason}"}
    ck = metrics.get("checkpoint", {})
    t2v, v2t = metrics["t2v"]["R1"], metrics["v2t"]["R1"]
    n_test = metrics.get("efficiency", {}).get("n_test_videos")
    missing = metrics.get("test_coverage", {}).get("missing_test_videos") or []
    notes = [f"{len(missing)} test videos missing from the cache (listed in metrics.json)"] if missing else []
    if n_test != entry["test_videos"]:
        notes.append(f"test set of {n_test} videos, the original's has {entry['test_videos']}: not comparable")
    return {**row, "setting": ck.get("setting"), "frames": ck.get("max_frames"), "words": ck.get("max_words"),
            "t2v_R1_ours": t2v, "t2v_R1_diff": round(t2v - entry["t2v_R1"], 2),
            "v2t_R1_ours": v2t, "v2t_R1_diff": round(v2t - entry["v2t_R1"], 2),
            "n_test_videos": n_test, "status": "ours", "note": "; ".join(notes)}


def _cell(v: object, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:+.1f}" if signed else f"{v:.1f}"
    return str(v)


def _cells(r: Mapping) -> list[str]:
    frames = f"{r['frames']} / {r['words']}" if r.get("frames") is not None and not pd.isna(r.get("frames")) else "–"
    return [str(r["checkpoint"]), str(r["test"]), _cell(r.get("setting")), frames,
            _cell(r["t2v_R1_authors"]), _cell(r.get("t2v_R1_ours")), _cell(r.get("t2v_R1_diff"), True),
            _cell(r["v2t_R1_authors"]), _cell(r.get("v2t_R1_ours")), _cell(r.get("v2t_R1_diff"), True),
            f"{_cell(r.get('n_test_videos'))} / {r['original_test_videos']}", str(r.get("note") or "")]


CAPTION = ("The authors' released CenterCLIP checkpoints (original repository README, \"Checkpoints\"; trained "
           "on 2 RTX 3090 GPUs), each evaluated here on its test split with the frames, words and token "
           "clustering of its own hparams_train.json. Authors' R@1 as their README reports it; Δ = ours − "
           "authors'. Same weights, so a difference comes from the data (our frames, decoding and test-set "
           "membership) and from the deliberate departures listed in the README.")


def render_released_table(listed: Mapping[str, Any], metrics: Mapping[str, Mapping],
                          not_run: Mapping[str, str], datasets: Mapping[str, str | None],
                          label: str) -> ReleasedTable:
    """The table of every listed checkpoint: ours where ``metrics`` has it, else "not run" with the
    reason from ``not_run``. ``datasets``: checkpoint id -> the config's dataset it ran on."""
    rows = [_row(cid, entry, datasets.get(cid), metrics.get(cid), not_run.get(cid, "no metrics"))
            for cid, entry in listed["checkpoints"].items()]
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    headline = f"Released checkpoints ({label} config): the authors' R@1 beside ours"
    demo = [f"**{DEMO_NOTE}**", ""] if label == "demo" else []
    md = [f"# {headline}", "", *demo, f"> {CAPTION}", "",
          "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    md += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in rows]
    tex = [f"% {headline}", r"\begin{table*}[t]", r"\centering", r"\scriptsize",
           rf"\caption{{{latex_escape(CAPTION)}}}", r"\label{tab:released}",
           r"\begin{tabular}{llll" + "r" * 8 + "}", r"\toprule",
           " & ".join(latex_escape(h) for h in HEADER) + r" \\", r"\midrule"]
    tex += [" & ".join(latex_escape(c) for c in _cells(r)) + r" \\" for r in rows]
    tex += [r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    return ReleasedTable(frame, "\n".join(md) + "\n", frame.to_csv(index=False), "\n".join(tex) + "\n")
