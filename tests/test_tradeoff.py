"""The trade-off figure: T->V R@1 against GFLOPs per video, one line per training-free sweep, meanP a star."""

import json

import numpy as np
import pytest

from centerclip.paper.tradeoff import MissingGflopsError, plot_tradeoff, render_tradeoff, tradeoff_points

EXPERIMENTS = {
    "meanP": {"dataset": "msrvtt", "method": "meanP", "rows": {"table3a": "x", "tradeoff": "meanP (fine-tuned)"}},
    "km49": {"dataset": "msrvtt", "method": "centerclip", "training_free": "meanP",
             "rows": {"beyond": "k-medoids, training-free", "tradeoff_kmedoids": "K = 49"}},
    "km9": {"dataset": "msrvtt", "method": "centerclip", "training_free": "meanP", "rows": {"tradeoff_kmedoids": "K = 9"}},
    "tome39": {"dataset": "msrvtt", "method": "token_merging", "training_free": "meanP",
               "rows": {"tradeoff_tome": "r = 39"}},
    "tome10": {"dataset": "msrvtt", "method": "token_merging", "training_free": "meanP",
               "rows": {"tradeoff_tome": "r = 10"}},
    "pool2": {"dataset": "msrvtt", "method": "pooling", "training_free": "meanP", "rows": {"tradeoff_pooling": "S = 2"}},
    "other": {"dataset": "msrvtt", "method": "meanP", "rows": {"table1": "y"}},
}


def metrics(r1: float, gflops: float | None) -> dict:
    efficiency = {"n_test_videos": 100} | ({} if gflops is None else {"gflops_per_video": gflops})
    return {"t2v": {"R1": r1, "R5": 50.0}, "v2t": {"R1": r1}, "efficiency": efficiency}


RUNS = {"meanP": [metrics(15.0, 1.0)], "km49": [metrics(9.0, 0.7)], "km9": [metrics(4.0, 0.55)],
        "tome39": [metrics(11.0, 0.72)], "tome10": [metrics(14.0, 0.95)], "pool2": []}


def lines_by_label(fig) -> dict:
    return {line.get_label(): line for line in fig.axes[0].get_lines()}


def test_each_sweep_is_a_line_of_r1_against_gflops_and_meanp_a_star(tmp_path):
    points, not_run = tradeoff_points(EXPERIMENTS, RUNS)
    assert not_run == [("pooling", "S = 2", "pool2")]
    fig = plot_tradeoff(points, tmp_path / "t.png", tmp_path / "t.pdf", "paper")
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "t.pdf").read_bytes()[:4] == b"%PDF"
    assert not list(tmp_path.glob(".*"))  # no temporaries left
    lines = lines_by_label(fig)
    km, tome, star = lines["CenterCLIP, k-medoids++"], lines["ToMe"], lines["meanP (fine-tuned)"]
    assert list(km.get_xdata()) == [0.55, 0.7] and list(km.get_ydata()) == [4.0, 9.0]  # in the order of GFLOPs
    assert list(tome.get_xdata()) == [0.72, 0.95] and list(tome.get_ydata()) == [11.0, 14.0]
    assert km.get_marker() != tome.get_marker() and km.get_linestyle() == "-"
    assert star.get_marker() == "*" and list(star.get_xdata()) == [1.0] and list(star.get_ydata()) == [15.0]
    assert "pooling" not in lines  # its one run has no metrics
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"K = 9", "K = 49", "r = 10", "r = 39", "meanP (fine-tuned)"} <= texts
    assert fig.axes[0].get_xlabel() == "video encoder GFLOPs per video"
    assert "[paper]" in fig._suptitle.get_text()


def test_seeds_are_averaged_and_the_demo_is_labelled(tmp_path):
    paths = {}
    for name, runs in {"meanP": [metrics(15.0, 1.0), metrics(17.0, 1.0)], "km49": [metrics(9.0, 0.7)]}.items():
        paths[name] = []
        for i, m in enumerate(runs):
            path = tmp_path / f"{name}_{i}.json"
            path.write_text(json.dumps(m))
            paths[name].append(path)
    fig = render_tradeoff(EXPERIMENTS, paths, tmp_path / "t.png", tmp_path / "t.pdf", "demo")
    lines = lines_by_label(fig)
    assert list(lines["meanP (fine-tuned)"].get_ydata()) == [16.0]
    assert list(lines["CenterCLIP, k-medoids++"].get_xdata()) == [0.7]
    assert "demo" in fig._suptitle.get_text()
    footer = "\n".join(t.get_text() for t in fig.texts)
    assert "Demo numbers" in footer and "training-free" in footer and "meanP" in footer
    assert "Not run: CenterCLIP, k-medoids++ K = 9; ToMe r = 39; ToMe r = 10; pooling S = 2." in " ".join(
        footer.split())


def test_a_metrics_file_without_gflops_names_the_file_and_its_evaluate_job(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(metrics(9.0, None)))
    with pytest.raises(MissingGflopsError, match=rf"{path}: no efficiency.gflops_per_video.*rerun its evaluate job"):
        render_tradeoff(EXPERIMENTS, {"km49": [path]}, tmp_path / "t.png", tmp_path / "t.pdf", "paper")
    assert not (tmp_path / "t.png").exists()


def test_no_runs_yet_still_draws_the_figure(tmp_path):
    fig = render_tradeoff(EXPERIMENTS, {}, tmp_path / "t.png", tmp_path / "t.pdf", "paper")
    assert (tmp_path / "t.pdf").exists() and not fig.axes[0].get_lines()
    assert np.isfinite(fig.axes[0].get_xlim()).all()
