"""Tables 1-9 rendered from fixture metrics dicts: cells, differences, seeds, cited / not-run rows,
paper order, the Markdown / CSV / LaTeX texts, and demo tables leaving our memory and speed out."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from centerclip.paper.tables import render_table, rows_by_table

REPO = Path(__file__).resolve().parents[1]
TABLES = ["table1", "table2", "table3a", "table3b", "table4", "table5", "table6", "table7", "table8", "table9"]


def metrics(r1: float, mem: float = 500.0, ms: float = 4.0, best: float | None = None) -> dict:
    """A metrics.json as centerclip.training.evaluate writes it (the fields the tables read)."""
    m = {"t2v": {"R1": r1, "R5": r1 + 10, "R10": r1 + 20, "MdR": 5.0, "MnR": 12.5},
         "v2t": {"R1": r1 + 1, "R5": r1 + 11, "R10": r1 + 21, "MdR": 4.0, "MnR": 11.0},
         "efficiency": {"eval_ms_per_video": ms, "model_ms_per_video": ms / 2, "n_test_videos": 32},
         "train": {"peak_memory_mb": mem}, "best_epoch_on_test": None}
    if best is not None:
        m["best_epoch_on_test"] = {"epoch": 2, "t2v": {"R1": best}, "v2t": {"R1": best}}
    return m


def line(frame: pd.DataFrame, row: str, source: str) -> pd.Series:
    got = frame[(frame.row == row) & (frame.source == source)]
    assert len(got) == 1, (row, source, len(got))
    return got.iloc[0]


BASE, KM = "baseline (CLIP4clip (meanP), ViT-B/32)", "CenterCLIP (k-medoids++, B6 - 6, 49)"


TABLE4_RUNS = {"lsmdc_b32_meanP": [metrics(10.0, mem=400, best=14.0), metrics(12.0, mem=420, best=15.0)],
               "lsmdc_b32_km_B6-6-49": [metrics(11.0, mem=300, ms=3.0)],
               "lsmdc_b16_meanP": []}
TABLE4_NOT_RUN = {"lsmdc_b16_meanP": "LSMDC not provided: place the files listed by `snakemake lsmdc_check`"}
EFFICIENCY = ["MeM", "Speed", "MeM_std", "Speed_std", "MeM_ratio", "Speed_ratio"]


@pytest.fixture(scope="module")
def table4(paper_numbers, experiments):
    return render_table("table4", paper_numbers, experiments, TABLE4_RUNS, "demo", not_run=TABLE4_NOT_RUN)


@pytest.fixture(scope="module")
def table4_paper(paper_numbers, experiments):
    """The same runs under the full reproduction's label: our memory and speed are shown."""
    return render_table("table4", paper_numbers, experiments, TABLE4_RUNS, "paper", not_run=TABLE4_NOT_RUN)


def test_numbers_land_in_their_cells_with_differences(table4_paper, paper_numbers):
    table4 = table4_paper
    f = table4.frame
    ours, theirs, diff = line(f, KM, "ours"), line(f, KM, "paper"), line(f, KM, "diff")
    assert ours.run_id == "lsmdc_b32_km_B6-6-49" and ours.n_seeds == 1
    assert (ours.t2v_R1, ours.t2v_R10, ours.v2t_R1, ours.v2t_MnR, ours.MeM, ours.Speed) == (11.0, 31.0, 12.0, 11.0,
                                                                                             300.0, 3.0)
    printed = dict(zip(paper_numbers["columns"], paper_numbers["tables"]["table4"]["rows"][KM]))
    assert theirs.t2v_R1 == printed["t2v_R1"] == 21.9 and theirs.MeM == 16.4
    assert diff.t2v_R1 == pytest.approx(11.0 - 21.9) and diff.v2t_MnR == pytest.approx(11.0 - 48.7)
    assert diff.t2v_MdR == pytest.approx(5.0 - 10.0)
    assert math.isnan(diff.MeM) and math.isnan(diff.Speed)  # efficiency is never differenced
    assert "| −10.9 |" in table4.markdown and "| 300 MB |" in table4.markdown and "| 16.4 GB |" in table4.markdown


def test_seeds_give_mean_and_std(table4):
    ours = line(table4.frame, BASE, "ours")
    assert ours.n_seeds == 2 and ours.t2v_R1 == 11.0
    assert ours.t2v_R1_std == pytest.approx(math.sqrt(2))
    assert "11.0 ± 1.4" in table4.markdown and "(2 seeds)" in table4.markdown
    assert ours.best_epoch_t2v_R1 == 14.5 and "test-selected" in table4.markdown


def test_memory_and_speed_ratios_to_the_reference_row(table4_paper):
    f = table4_paper.frame
    assert line(f, BASE, "ours").MeM_ratio == pytest.approx(1.0)
    assert line(f, KM, "ours").MeM_ratio == pytest.approx(300 / 410)
    assert line(f, KM, "paper").MeM_ratio == pytest.approx(16.4 / 20.8)
    assert line(f, KM, "ours").Speed_ratio == pytest.approx(3.0 / 4.0)


def test_cited_and_not_run_rows(table4):
    f = table4.frame
    cited = f[f.row == "MMT [13]"]
    assert list(cited.source) == ["paper"] and cited.iloc[0].status == "cited"
    assert re.search(r"\| MMT \[13\] \| paper \(cited\) \|", table4.markdown)
    b16 = line(f, "baseline (CLIP4clip (meanP), ViT-B/16)", "ours")
    assert b16.status == "not run" and "lsmdc_check" in b16.note and math.isnan(b16.t2v_R1)
    assert "not run (LSMDC not provided" in table4.markdown
    spectral = line(f, "CenterCLIP (spectral, B6 - 6, 49)", "ours")  # no metrics and no reason given
    assert spectral.status == "not run" and spectral.note
    assert not len(f[(f.status == "not run") & (f.source == "diff")])


def test_demo_leaves_our_memory_and_speed_out_and_keeps_the_papers(table4, table4_paper, paper_numbers):
    f = table4.frame
    for row in (BASE, KM):
        ours, theirs = line(f, row, "ours"), line(f, row, "paper")
        assert all(math.isnan(ours[c]) for c in EFFICIENCY), row
        assert ours.t2v_R1 == line(table4_paper.frame, row, "ours").t2v_R1  # retrieval untouched
        assert theirs.MeM == line(table4_paper.frame, row, "paper").MeM and not math.isnan(theirs.MeM_ratio)
    assert line(f, KM, "paper").MeM_ratio == pytest.approx(16.4 / 20.8)
    km = next(ln for ln in table4.markdown.splitlines() if ln.startswith("| " + KM))
    assert "MB" not in km and km.split(" | ")[1].startswith("ours (1 seed")
    assert "300 MB" not in table4.markdown and "| 16.4 GB |" in table4.markdown
    assert "| 300 MB |" in table4_paper.markdown
    # the CSV frame carries NaN, the LaTeX "--", for our efficiency cells
    back = pd.read_csv(io.StringIO(table4.csv))
    assert back.loc[back.source == "ours", EFFICIENCY].isna().all().all()
    assert back.loc[back.source == "paper", "MeM"].notna().any()
    assert "300 MB" not in table4.latex and "300 MB" in table4_paper.latex


def test_demo_footnote_says_why_and_points_to_the_benchmarks(table4, table4_paper):
    notes = [ln for ln in table4.markdown.splitlines() if ln.startswith("- ")]
    why = [n for n in notes if "left out" in n]
    assert len(why) == 1 and "bench/README.md" in why[0] and "ViT-B/32" in why[0] and "ViT-B/16" in why[0]
    assert not re.search(r"\d+\.\d+ ?(ms|MB|GB|×|x\b)", why[0])  # points to the benchmarks, quotes no number
    units = next(n for n in notes if n.startswith("- MeM."))
    assert "ours" not in units and "paper's" in units  # does not claim our values are shown
    assert "bench/README.md" in table4.latex
    full = table4_paper.markdown
    assert "left out" not in full and "bench/README.md" not in full and "MeM.: ours = peak" in full


def test_rows_in_paper_order_and_demo_header(table4, paper_numbers):
    assert list(dict.fromkeys(table4.frame.row)) == list(paper_numbers["tables"]["table4"]["rows"])
    first = table4.markdown.splitlines()[0]
    assert first.startswith("# Table 4") and "demo" in first
    assert "synthetic" in table4.markdown and paper_numbers["tables"]["table4"]["caption"] in table4.markdown
    assert "pretrained by the demo" in table4.markdown and "not what CenterCLIP achieves" in table4.markdown
    assert "random" not in first
    assert "DEMO" in table4.latex


def test_csv_round_trips(table4):
    back = pd.read_csv(io.StringIO(table4.csv))
    assert len(back) == len(table4.frame) and back.t2v_R1.notna().sum() == table4.frame.t2v_R1.notna().sum()


def test_setting_columns_come_from_the_paper(paper_numbers, experiments):
    r = render_table("table9", paper_numbers, experiments, {"anet_b32_meanP": [metrics(30.0)]}, "full")
    ours, diff = line(r.frame, "lr = 1e-5, epochs = 8", "ours"), line(r.frame, "lr = 1e-5, epochs = 8", "diff")
    assert (ours.lr, ours.epochs) == (1e-5, 8) and math.isnan(diff.lr) and math.isnan(diff.epochs)
    assert "demo" not in r.markdown.splitlines()[0]
    r7 = render_table("table7", paper_numbers, experiments, {"anet_b32_km_B6-15-49": [metrics(30.0)]}, "full")
    assert line(r7.frame, "N_in = 60", "ours").N_in == 60


def test_experiment_rows_must_name_paper_rows(paper_numbers, experiments):
    bad = dict(experiments, extra={"dataset": "lsmdc", "rows": {"table4": "CenterCLIP (typo)"}})
    with pytest.raises(ValueError, match="typo"):
        render_table("table4", paper_numbers, bad, {}, "demo")


def latex_ok(latex: str, n_columns: int) -> None:
    begins = re.findall(r"\\begin\{(\w+\*?)\}", latex)
    ends = re.findall(r"\\end\{(\w+\*?)\}", latex)
    assert sorted(begins) == sorted(ends) and begins == ends[::-1]
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", latex).group(1)
    assert len(spec) == n_columns
    rows = [ln for ln in latex.splitlines() if ln.endswith(r"\\")]
    assert rows
    for ln in rows:
        assert len(re.findall(r"(?<!\\)&", ln)) == n_columns - 1, ln
        assert ln.count("$") % 2 == 0, ln
    assert latex.count("{") - latex.count(r"\{") == latex.count("}") - latex.count(r"\}")


@pytest.mark.parametrize("table_id", TABLES)
def test_every_table_renders(paper_numbers, experiments, table_id):
    """Every paper row appears once as a method row; a run for each own row, one missing."""
    provided = rows_by_table(experiments, table_id)
    run_ids = list(provided.values())
    runs = {rid: [metrics(20.0 + i)] for i, rid in enumerate(run_ids[1:])}
    r = render_table(table_id, paper_numbers, experiments, runs, "demo", not_run={run_ids[0]: "held out in this test"})
    table = paper_numbers["tables"][table_id]
    body = [ln for ln in r.markdown.splitlines() if ln.startswith("| ")][1:]
    methods = [ln.split(" | ")[0][2:] for ln in body if not ln.startswith("|  |")]
    assert methods == [n.replace("|", "\\|") for n in table["rows"]]
    header = [ln for ln in r.markdown.splitlines() if ln.startswith("| ")][0]
    n_columns = header.count(" | ") + 1
    assert all(ln.count(" | ") + 1 == n_columns for ln in body)
    latex_ok(r.latex, n_columns)
    assert "held out in this test" in r.markdown
    cited = set(table.get("cited") or [])
    assert set(r.frame[r.frame.status == "cited"].row) == cited - set(provided)
    assert len(r.frame[r.frame.source == "diff"]) == len(runs)
    efficiency = [c for c in EFFICIENCY if c in r.frame.columns]
    assert r.frame.loc[r.frame.source == "ours", efficiency].isna().all().all()  # demo: ours left out
    assert ("bench/README.md" in r.markdown) == bool(efficiency)
    if efficiency:  # the paper's efficiency cells stay wherever the paper prints them
        printed = [dict(zip(r.frame.attrs["columns"], v)).get("MeM") for v in table["rows"].values()]
        shown = r.frame.loc[r.frame.source == "paper", "MeM"]
        assert shown.notna().sum() == sum(isinstance(v, (int, float)) for v in printed)
        full = render_table(table_id, paper_numbers, experiments, runs, "paper").frame
        assert full.loc[(full.source == "ours") & (full.status == "ours"), "MeM"].notna().all()


def test_lines_say_how_runs_departed_from_the_paper(paper_numbers, experiments):
    """Weights other than OpenAI's release (by the sha256 each run recorded), another global batch or other
    epochs are said on our line and explained once below; a run as the paper's says nothing."""
    defaults = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text())["dataset_defaults"]
    as_paper = {**metrics(40.0), "global_batch": 128, "epochs": 5,
                "weights": {"sha256": "40d3657159", "openai": "ViT-B/32"}}
    other = {**metrics(30.0), "global_batch": 8, "epochs": 1,
             "weights": {"sha256": "fa2274153b59e992", "openai": None}}
    runs = {"msvd_b32_meanP": [as_paper], "msvd_b32_km_B6-4-49": [other]}
    left_out = {"msvd_b32_sp_B6-4-49": "left out by only_experiments in the config"}
    md = render_table("table1", paper_numbers, experiments, runs, "paper", left_out, defaults).markdown
    lines = {line.split("|")[1].strip(): line for line in md.splitlines() if "| ours" in line}
    baseline = "baseline (CLIP4clip (meanP), ViT-B/32)"
    assert "| ours (1 seed) |" in lines[baseline]
    centerclip = lines["CenterCLIP (k-medoids++, B6 - 4, 49)"]
    assert "weights not OpenAI's (sha256 fa2274153b59…)" in centerclip
    assert "global batch 8, paper 128" in centerclip and "1 epoch, paper 5" in centerclip
    assert "ours: not run (left out by only_experiments in the config)" in lines["CenterCLIP (spectral, B6 - 4, 49)"]
    assert "trained otherwise than the paper" in md
    random = {**metrics(10.0), "weights": {"random": True, "init_seed": 0}}
    md = render_table("table1", paper_numbers, experiments, {"msvd_b32_meanP": [random]}, "demo", {}, defaults).markdown
    assert "randomly initialised backbone, not OpenAI's CLIP" in md


def test_tables_state_the_test_set_size_beside_the_papers(paper_numbers, experiments):
    assert paper_numbers["test_videos"] == {"msrvtt": 1000, "msvd": 670, "lsmdc": 1000, "activitynet": 4869}
    full = metrics(30.0)
    full["efficiency"]["n_test_videos"] = 4869
    table = render_table("table2", paper_numbers, experiments, {"anet_b32_meanP": [full]}, "paper")
    assert "Test sets of our runs: activitynet 4869 videos (the paper's: 4869)." in table.markdown
    short = metrics(30.0)
    short["efficiency"]["n_test_videos"] = 4860  # a copy lacking 9 of the original's videos
    table = render_table("table2", paper_numbers, experiments, {"anet_b32_meanP": [short]}, "paper")
    assert "activitynet 4860 videos (the paper's: 4869; R@k not comparable where the sizes differ)" in table.markdown


def with_gflops(m: dict, gflops: float) -> dict:
    return {**m, "efficiency": {**m["efficiency"], "gflops_per_video": gflops}}


def test_every_table_has_our_gflops_and_its_ratio_also_in_the_demo(paper_numbers, experiments):
    """GFLOPs are counted, not measured: the demo keeps them (unlike MeM / Speed), with '÷ ref'."""
    runs = {"lsmdc_b32_meanP": [with_gflops(metrics(10.0), 0.8)],
            "lsmdc_b32_km_B6-6-49": [with_gflops(metrics(11.0), 0.6)]}
    result = render_table("table4", paper_numbers, experiments, runs, "demo")
    frame = result.frame
    assert line(frame, BASE, "ours")["GFLOPs"] == 0.8 and line(frame, KM, "ours")["GFLOPs"] == 0.6
    assert line(frame, KM, "ours")["GFLOPs_ratio"] == pytest.approx(0.75)
    assert math.isnan(line(frame, KM, "ours")["MeM"])  # measured efficiency stays withheld in the demo
    assert math.isnan(line(frame, KM, "paper")["GFLOPs"])  # the paper prints none
    header = next(ln for ln in result.markdown.splitlines() if ln.startswith("| Method"))
    assert "| GFLOPs |" in header and "GFLOPs ÷ ref" in header
    km_line = next(ln for ln in result.markdown.splitlines() if "| ours (1 seed" in ln and "0.75" in ln)
    assert "| 0.6 |" in km_line
    assert "FlopCounterMode" in result.markdown


def test_an_ours_only_table_shows_the_experiments_rows_with_their_settings(paper_numbers, experiments):
    """A table beyond the paper: its rows are whatever the experiments name, in their order, each with the
    method's own description of its setting; no paper or difference lines."""
    paper = {**paper_numbers, "tables": {**paper_numbers["tables"], "extra": {
        "caption": "Beyond the paper.", "ours_only": True, "columns": ["t2v_R1", "t2v_R5", "t2v_MdR"], "rows": {}}}}
    exps = {"a": {"dataset": "msrvtt", "method": "meanP", "rows": {"extra": "meanP"}},
            "b": {"dataset": "msrvtt", "method": "token_merging", "rows": {"extra": "ToMe, training-free"}},
            "c": {"dataset": "msrvtt", "method": "centerclip", "rows": {"extra": "not yet run"}}}
    tome = with_gflops(metrics(20.0), 0.5)
    tome["run_config"] = {"reduction": {"method": "token_merging", "block": 6, "segments": 4, "r": 30}}
    tome["train"] = {"training_free": {"from_run": "msrvtt/a/seed42"}}
    runs = {"a": [with_gflops(metrics(21.0), 1.0)], "b": [tome], "c": []}
    result = render_table("extra", paper, exps, runs, "demo", not_run={"c": "not planned"})
    frame = result.frame
    assert list(frame.row) == ["meanP", "ToMe, training-free", "not yet run"]
    assert set(frame.source) == {"ours"}
    assert line(frame, "ToMe, training-free", "ours")["setting"] == "ToMe (B6 − 4, r = 30)"
    assert line(frame, "ToMe, training-free", "ours")["GFLOPs_ratio"] == pytest.approx(0.5)
    assert "training-free: weights of msrvtt/a/seed42" in line(frame, "ToMe, training-free", "ours")["note"]
    md = result.markdown
    assert md.startswith("# Results beyond the paper") and "| setting |" in md and "ToMe (B6 − 4, r = 30)" in md
    assert "ours − paper" not in md and "not planned" in md
    assert "cited" not in md and "the paper's peak training memory" not in md  # no paper numbers to explain
    # Method, source, setting, T→V R@1 / R@5 / MdR, GFLOPs, GFLOPs ÷ ref, best-epoch R@1
    latex_ok(result.latex, 9)
