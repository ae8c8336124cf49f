"""Figures 3-5: files written (PNG + PDF, non-empty), axes as expected, missing points noted, demo
memory and time panels left empty with a note, and Figure 5's kept patches on a tiny random CLIP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_inputs import TINY
from run_settings import train_settings

from centerclip.paper.figures import (figure_points, frames_per_segment_settings, plot_figure3, plot_figure4,
                                      plot_figure5)
from centerclip.model.clustering import kmedoids, spectral
from centerclip.model.video_encoder import ClusterStage
from centerclip.paper.figure5 import kept_patches, patch_mask


def metrics(r1: float, mem: float, ms: float) -> dict:
    """A metrics.json with distinct quantities: GFLOPs = mem / 100, its clustering share = ms / 100."""
    return {"t2v": {"R1": r1, "R5": 0, "R10": 0, "MdR": 1, "MnR": 1}, "v2t": {"R1": r1 + 2, "R5": 0, "R10": 0,
            "MdR": 1, "MnR": 1}, "efficiency": {"eval_ms_per_video": 2 * ms, "model_ms_per_video": ms,
                                                "gflops_per_video": mem / 100, "gflops_clustering": ms / 100},
            "train": {"peak_memory_mb": mem}}


def written(*paths: Path) -> None:
    for p in paths:
        assert p.is_file() and p.stat().st_size > 1000, p
    png, pdf = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    assert not list(png.parent.glob(".*.tmp*"))


def all_text(fig) -> str:
    return " ".join([t.get_text() for t in fig.texts] + [fig._suptitle.get_text() if fig._suptitle else ""])


def counted(ax) -> bool:
    """A demo efficiency panel: counted GFLOPs in place of measured memory / time."""
    return "GFLOPs" in ax.get_ylabel() and "memory" not in ax.get_ylabel() and "time" not in ax.get_ylabel()


def test_figure_points_parse_the_experiment_table(experiments):
    fig3 = figure_points(experiments, "figure3")
    assert [b for b, _ in fig3] == [0, 2, 4, 6, 8, 10] and dict(fig3)[6] == "lsmdc_b32_km_B6-4-49"
    assert [k for k, _ in figure_points(experiments, "figure4_lsmdc_K")] == [16, 25, 49, 98]
    assert 15 in dict(figure_points(experiments, "figure4_activitynet_S"))
    with pytest.raises(ValueError, match="B = 6"):
        figure_points({"x": {"rows": {"figure3": "six"}}}, "figure3")


def test_figure3(tmp_path):
    points = [(b, metrics(10 + b, 100 + 20 * b, 1.0)) for b in (2, 4, 6, 8)] + [(0, None), (10, None)]
    fig = plot_figure3(points, tmp_path / "f3.png", tmp_path / "f3.pdf", "demo")
    written(tmp_path / "f3.png", tmp_path / "f3.pdf")
    ax_r, ax_m = fig.axes
    assert ax_r.get_xlabel() == ax_m.get_xlabel() == "clustering after block B"
    assert ax_r.get_ylabel() == "R@1 (%)" and ax_m.get_ylabel() == "video encoder GFLOPs per video"
    t2v = ax_r.get_lines()[0]
    assert list(t2v.get_xdata()) == [2, 4, 6, 8] and list(t2v.get_ydata()) == [12, 14, 16, 18]
    assert any("B = 6" in str(l.get_label()) for l in ax_r.get_lines())  # paper default marked
    # the demo plots counted GFLOPs where measured memory would be (it leaves memory out)
    assert counted(ax_m) and list(ax_m.get_lines()[0].get_ydata()) == [1.4, 1.8, 2.2, 2.6]
    text = all_text(fig)
    assert "FlopCounterMode" in text
    assert "demo" in text and "without numbers" in text and "B = 0, B = 10" in text
    assert "pretrained by the demo" in text and "not what CenterCLIP achieves" in text and "random" not in text


def test_figure3_full_reproduction_draws_memory(tmp_path):
    points = [(b, metrics(10 + b, 100 + 20 * b, 1.0)) for b in (2, 4, 6)]
    fig = plot_figure3(points, tmp_path / "f3.png", tmp_path / "f3.pdf", "paper")
    ax_m = fig.axes[1]
    assert list(ax_m.get_lines()[0].get_ydata()) == [140, 180, 220] and not counted(ax_m)
    assert "demo" not in all_text(fig)


FIGURE4_GROUPS = {"lsmdc_K": [(k, metrics(k / 10, k, k / 20)) for k in (16, 25, 49)] + [(98, None)],
                  "lsmdc_S": [(s, metrics(s, 50 * s, s)) for s in (1, 2, 3, 4, 6)],
                  "activitynet_K": [(k, metrics(k / 5, 2 * k, k / 10)) for k in (25, 49, 98)],
                  "activitynet_S": [(s, metrics(s, 10 * s, s)) for s in (6, 10, 12, 15, 20)]}


def test_figure4(tmp_path):
    fig = plot_figure4(FIGURE4_GROUPS, tmp_path / "f4.png", tmp_path / "f4.pdf", "full")
    written(tmp_path / "f4.png", tmp_path / "f4.pdf")
    assert len(fig.axes) == 6
    assert [ax.get_xlabel() for ax in fig.axes] == ["number of clusters K"] * 3 + ["number of segments S"] * 3
    ylabels = [ax.get_ylabel() for ax in fig.axes[:3]]
    assert ylabels[0] == "R@1 (%)" and "memory" in ylabels[1] and "inference time" in ylabels[2]
    time_k = fig.axes[2].get_lines()[0]  # LSMDC model ms vs K
    assert list(time_k.get_xdata()) == [16, 25, 49] and list(time_k.get_ydata()) == [0.8, 1.25, 2.45]
    labels = [str(l.get_label()) for ax in fig.axes for l in ax.get_lines()]
    assert any("K = 49" in s for s in labels) and any("S = 15" in s for s in labels)
    assert any("S = 4" in s for s in labels)
    text = all_text(fig)
    assert "LSMDC: not run (skipped): K = 98" in text and "demo" not in text
    assert not any(counted(ax) for ax in fig.axes)


def test_figure4_demo_plots_gflops_instead_of_memory_and_time(tmp_path):
    fig = plot_figure4(FIGURE4_GROUPS, tmp_path / "f4.png", tmp_path / "f4.pdf", "demo")
    written(tmp_path / "f4.png", tmp_path / "f4.pdf")
    r1_k, mem_k, time_k, r1_s, mem_s, time_s = fig.axes
    for ax in (mem_k, time_k, mem_s, time_s):
        assert counted(ax), ax.get_title()
    assert mem_k.get_ylabel() == "video encoder GFLOPs per video"
    assert time_s.get_ylabel() == "clustering GFLOPs per video"
    gflops_k, clustering_k = mem_k.get_lines()[0], time_k.get_lines()[0]  # LSMDC vs K
    assert list(gflops_k.get_xdata()) == [16, 25, 49] and list(gflops_k.get_ydata()) == [0.16, 0.25, 0.49]
    assert list(clustering_k.get_ydata()) == [0.008, 0.0125, 0.0245]
    for ax in (r1_k, r1_s):  # R@1 panels as in the full reproduction
        assert ax.get_lines() and not ax.texts
    assert list(r1_k.get_lines()[0].get_ydata()) == [1.6, 2.5, 4.9]
    assert [ax.get_xlabel() for ax in fig.axes] == ["number of clusters K"] * 3 + ["number of segments S"] * 3
    assert list(mem_s.get_xticks()) == [1, 2, 3, 4, 6, 10, 12, 15, 20]
    text = all_text(fig)
    assert "pretrained by the demo" in text and "LSMDC: not run (skipped): K = 98" in text


@pytest.fixture(scope="module")
def visual(clip):
    return clip.visual


def test_kept_patches_count_and_order(visual):
    frames = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    grid2 = TINY.grid ** 2  # 16 patches per frame
    for segments, clusters in ((6, 5), (3, 7), (2, 10), (1, 96)):
        kept = kept_patches(visual, frames, ClusterStage(2, segments, clusters))
        assert len(kept) == segments
        n = (6 // segments) * grid2
        for idx in kept:
            assert idx.dtype == torch.long and len(idx) == min(clusters, n)
            assert torch.all(idx[1:] > idx[:-1]) and 0 <= int(idx.min()) and int(idx.max()) < n
    assert kept_patches(visual, frames, ClusterStage(0, 3, 4))[0].shape == (4,)  # clustering on the embeddings
    with pytest.raises(ValueError, match="segments"):
        kept_patches(visual, frames, ClusterStage(2, 4, 5))
    with pytest.raises(ValueError, match="block"):
        kept_patches(visual, frames, ClusterStage(5, 3, 5))


def test_kept_patches_are_what_the_clustering_keeps(visual):
    """The figure's indices are the encoder's own: k-medoids / spectral on the tokens after block B."""
    frames = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = visual.embed(frames)
        for blk in visual.transformer.resblocks[:2]:
            x = blk(x)
    rows = x[:, 1:].reshape(3, 2 * TINY.grid ** 2, -1)
    for stage, expected in ((ClusterStage(2, 3, 7), kmedoids(rows, 7).medoids),
                            (ClusterStage(2, 3, 7, algorithm="spectral", knn=5), spectral(rows, 7, knn=5).medoids),
                            (ClusterStage(2, 3, 7, l2_normalize=True), kmedoids(rows, 7, l2_normalize=True).medoids)):
        assert torch.equal(torch.stack(kept_patches(visual, frames, stage)), expected), stage


def test_patch_mask():
    mask = patch_mask(torch.tensor([0, 5, 16 + 15]), frames_per_segment=2, grid=4)
    assert mask.shape == (2, 4, 4) and mask.sum() == 3
    assert mask[0, 0, 0] and mask[0, 1, 1] and mask[1, 3, 3]


def test_figure5(tmp_path, visual):
    t = 12
    rng = np.random.default_rng(0)
    frames_uint8 = rng.integers(0, 256, size=(t, 64, 64, 3), dtype=np.uint8)
    frames = torch.from_numpy(frames_uint8).permute(0, 3, 1, 2).float() / 255.0
    pers = frames_per_segment_settings(t)
    assert pers == [1, 2, 3, 4]
    settings = [(per, kept_patches(visual, frames, ClusterStage(2, t // per, 6))) for per in pers]
    fig = plot_figure5(frames_uint8, settings, grid=4, patch=16, out_png=tmp_path / "f5.png",
                       out_pdf=tmp_path / "f5.pdf", label="demo")
    written(tmp_path / "f5.png", tmp_path / "f5.pdf")
    assert len(fig.axes) == len(pers) * t
    assert fig.axes[0].get_ylabel().startswith("1 frame/segment") and "S = 12" in fig.axes[0].get_ylabel()
    assert fig.axes[-1].get_xlabel() == f"frame {t}" and "demo" in all_text(fig)
    # kept patches keep their pixels, dropped ones are dimmed
    img = fig.axes[t].get_images()[0].get_array()  # row 2 (2 frames/segment), frame 1
    mask = patch_mask(settings[1][1][0], 2, 4)[0]
    r, c = map(int, np.argwhere(mask)[0])
    assert np.array_equal(img[16 * r:16 * r + 16, 16 * c:16 * c + 16], frames_uint8[0, 16 * r:16 * r + 16,
                                                                                     16 * c:16 * c + 16])
    r, c = map(int, np.argwhere(~mask)[0])
    assert img[16 * r:16 * r + 16, 16 * c:16 * c + 16].max() <= 255 * 0.25 + 1


def write_cache(path: Path, video_id: str, frames: np.ndarray) -> None:
    """A frame cache in FrameCache's layout, written directly (no video decoding)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("frames", data=frames)
        f.create_dataset("video_ids", data=np.array([video_id], dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("offsets", data=np.array([0], dtype=np.int64))
        f.create_dataset("counts", data=np.array([len(frames)], dtype=np.int64))
        f.attrs.update({"size": frames.shape[1], "fps": 3.0})


def test_figure5_from_checkpoint(tmp_path):
    from dataclasses import asdict

    from centerclip.model.retrieval import RetrievalModel
    from centerclip.training.checkpoint import build_clip
    from centerclip.paper.figures import figure5_from_checkpoint
    from centerclip.training.settings import RunConfig

    rng = np.random.default_rng(3)
    write_cache(tmp_path / "frames.h5", "video7", rng.integers(0, 256, size=(20, 80, 80, 3), dtype=np.uint8))
    raw = {"run_id": "lsmdc/x/seed0", "dataset": "lsmdc", "cache": str(tmp_path / "frames.h5"),
           "manifest": str(tmp_path / "manifest.csv"), "model": {"random": asdict(TINY)},
           "reduction": {"method": "centerclip", "stages": [{"block": 2, "segments": 3, "clusters": 8}]},
           "train": train_settings(epochs=1, lr=1e-3, num_frames=6, context_length=32),
           "eval": {"num_frames": 6, "context_length": 32, "batch_size": 2}}
    cfg = RunConfig.from_dict(raw)
    model = RetrievalModel(build_clip(cfg.model), cfg.reduction)
    torch.save({"run_config": raw, "model": model.state_dict()}, tmp_path / "checkpoint.pt")
    # the run's own setting, read from the checkpoint: 6 evaluation frames, block 2, K = 8
    fig = figure5_from_checkpoint(tmp_path / "checkpoint.pt", tmp_path / "frames.h5", "video7",
                                  tmp_path / "f5.png", tmp_path / "f5.pdf", "demo")  # 80 px frames -> the model's 64
    written(tmp_path / "f5.png", tmp_path / "f5.pdf")
    assert len(fig.axes) == 4 * 6 and "video7" in all_text(fig)
    assert "k-medoids++ after block 2, K = 8" in all_text(fig) and "the run's own S = 3" in all_text(fig)
    with pytest.raises(KeyError, match="nope"):
        figure5_from_checkpoint(tmp_path / "checkpoint.pt", tmp_path / "frames.h5", "nope",
                                tmp_path / "g.png", tmp_path / "g.pdf", "demo")
    spectral = {**raw, "reduction": {"method": "centerclip", "stages": [
        {"block": 1, "segments": 2, "clusters": 5, "algorithm": "spectral", "knn": 6}]}}
    torch.save({"run_config": spectral, "model": model.state_dict()}, tmp_path / "spectral.pt")
    fig = figure5_from_checkpoint(tmp_path / "spectral.pt", tmp_path / "frames.h5", "video7",
                                  tmp_path / "s.png", tmp_path / "s.pdf", "demo")
    assert "spectral clustering after block 1, K = 5" in all_text(fig)
    meanp = {**raw, "reduction": {"method": "meanP"}}
    torch.save({"run_config": meanp, "model": model.state_dict()}, tmp_path / "meanp.pt")
    with pytest.raises(ValueError, match="keeps no subset of tokens"):
        figure5_from_checkpoint(tmp_path / "meanp.pt", tmp_path / "frames.h5", "video7",
                                tmp_path / "m.png", tmp_path / "m.pdf", "demo")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a training checkpoint"):
        figure5_from_checkpoint(tmp_path / "bad.pt", tmp_path / "frames.h5", "video7",
                                tmp_path / "g.png", tmp_path / "g.pdf", "demo")
