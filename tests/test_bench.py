"""The benchmark suite (bench/): the FLOP model on known shapes, the README writer, and the GPU
script exercised on CPU (CI runs ``bench/gpu.sh --device cpu --quick``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import common  # noqa: E402
import run_all  # noqa: E402
import settings as S  # noqa: E402


def _find(key_prefix: str) -> S.Setting:
    return next(s for s in S.settings(S.ALL) if s.key.startswith(key_prefix))


def test_flop_ratio_baseline_is_one():
    for s in S.settings(S.ALL):
        if s.method == "meanP":
            assert S.flop_ratio(s) == pytest.approx(1.0)


def test_flop_ratio_known_shapes():
    # ViT-B/32, 12 frames, (B6-4,49): the FLOP model gives about 0.675 of the baseline
    assert S.flop_ratio(_find("B32_T12_kmedoids_B6-4-49")) == pytest.approx(0.675, abs=0.03)
    # every (B6-4,49) reduction keeps 4 x (1+49) tokens after block 6: same FLOPs
    for key in ("B32_T12_spectral", "B32_T12_pooling", "B32_T12_sparse"):
        assert S.flop_ratio(_find(key)) == pytest.approx(S.flop_ratio(_find("B32_T12_kmedoids")))
    # by hand: embed = 1/3 block per frame (49*3072*768 vs 50*12*768^2 + 2*50^2*768 MACs); ignore the head
    w, p = 768, 49
    blk = lambda n: 12 * n * w * w + 2 * n * n * w  # noqa: E731
    emb = p * 3 * 32 * 32 * w
    by_hand = (12 * emb + 6 * 12 * blk(50) + 6 * 4 * blk(50)) / (12 * emb + 12 * 12 * blk(50))
    assert S.flop_ratio(_find("B32_T12_kmedoids")) == pytest.approx(by_hand, rel=1e-3)
    # fewer kept tokens, fewer FLOPs; ActivityNet 60 frames: 12 segments < 15 segments
    assert S.flop_ratio(_find("B32_T60_kmedoids_B6-12")) < S.flop_ratio(_find("B32_T60_kmedoids_B6-15")) < 0.7
    # ViT-B/16 (B6-4,160): more patches, the quadratic term makes the saving larger
    assert 0.55 < S.flop_ratio(_find("B16_T12_kmedoids")) < 0.675


def test_flop_ratio_no_reduction_when_stage_keeps_everything():
    # S = T (one frame per segment) and K = P: same token count as the baseline
    s = S.Setting("g", "ViT-B/32", 12, "centerclip", "kmedoids", 6, 12, 49)
    assert S.flop_ratio(s) == pytest.approx(1.0, abs=1e-9)


def test_append_section_keeps_other_sections(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n## A\n\nintro A\n\n### run 1\n\nx\n\n## B\n\nintro B\n")
    common.append_section("## A", "unused", "### run 2\n\ny\n", readme)
    common.append_section("## C", "intro C", "### run 1\n\nz\n", readme)
    text = readme.read_text()
    assert text.index("### run 2") < text.index("## B") < text.index("## C")
    assert "intro B" in text and "intro A" in text and "intro C" in text and "unused" not in text


def _item_sections() -> dict[str, str]:
    """item -> the "## ..." heading its script appends under (read from the script, no import)."""
    out = {}
    for item in run_all.ITEMS:
        src = (REPO / "bench" / f"bench_{item}.py").read_text()
        out[item] = re.search(r'^SECTION = "(## [^"]+)"$', src, re.M).group(1)
    return out


def test_readme_layout_current_then_history():
    # bench/README.md: intro, "## Current numbers" with one marked part per item, then "# History" with
    # the item sections the scripts append to. common.append_section finds a section by the first
    # occurrence of its heading text, so that text must not occur before History.
    text = common.README.read_text()
    current, history = text.index("\n## Current numbers\n"), text.index("\n# History\n")
    assert current < history
    for item, section in _item_sections().items():
        begin = text.index(run_all.CURRENT_BEGIN.format(item=item))
        end = text.index(run_all.CURRENT_END.format(item=item))
        assert current < begin < end < history
        assert "Latest run:" in text[begin:end]
        first = text.index(section)
        assert first > history and text[first - 1] == "\n" and text[first + len(section)] == "\n"


def test_update_current_and_append_keep_layout(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(common.README.read_text())
    sections = _item_sections()
    block = "### 2099-01-01 00:00 — device `cpu` (test)\n\nheader line\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    tgt = [dict(item="clustering", target="kmedoids loop / batched >= 20x (CPU)", value=21.5, limit=20,
                met=True, note="shape")]
    before = readme.read_text()
    # what an item script does (History), then what run_all does after a full CPU run (Current numbers)
    common.append_section(sections["clustering"], "unused", block, readme)
    assert run_all.update_current("clustering", block, tgt, readme)
    text = readme.read_text()
    history = text.index("\n# History\n")
    begin = text.index(run_all.CURRENT_BEGIN.format(item="clustering"))
    end = text.index(run_all.CURRENT_END.format(item="clustering"))
    part = text[begin:end]
    assert "Latest run: **2099-01-01 00:00 — device `cpu` (test)**" in part and "| 1 | 2 |" in part
    assert "| kmedoids loop / batched >= 20x (CPU) | 21.500 (shape) | met |" in part
    assert "2026-11-27 13:03" not in part
    # the new block went to the end of the clustering History section, before the next item
    new_block = text.index("### 2099-01-01 00:00")
    assert history < text.index(sections["clustering"]) < new_block < text.index(sections["encoder"])
    # other items' current parts are untouched
    for item in ("encoder", "memory", "data", "dag"):
        b, e = run_all.CURRENT_BEGIN.format(item=item), run_all.CURRENT_END.format(item=item)
        assert text[text.index(b):text.index(e)] == before[before.index(b):before.index(e)]
    # a second update replaces, not appends
    assert run_all.update_current("clustering", block.replace("2099", "2100"), [], readme)
    text = readme.read_text()
    assert "Latest run: **2100-01-01" in text and "Latest run: **2099-01-01" not in text
    # no markers: nothing written
    readme.write_text("# Benchmarks\n")
    assert not run_all.update_current("clustering", block, tgt, readme)
    assert readme.read_text() == "# Benchmarks\n"


@pytest.mark.slow
def test_gpu_script_runs_on_cpu(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh"), "--device", "cpu", "--quick"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "bench_gpu.json").read_text())
    log = (tmp_path / "bench_gpu.log").read_text()
    # The device tests ran first (on the CPU here) and passed, with nothing failing silently.
    assert "gpu.sh: device tests exit 0" in log and " passed" in log and " failed" not in log
    assert (tmp_path / "bench_gpu.md").read_text().startswith("# Benchmark suite")
    assert {"device", "quick", "info", "items", "errors", "targets"} <= set(res)
    assert res["device"] == "cpu" and res["quick"] is True and res["errors"] == {}
    assert {"torch", "commit", "cpu", "date", "device_name"} <= set(res["info"])
    assert set(res["items"]) == {"clustering", "encoder", "memory"}
    clus = res["items"]["clustering"]["rows"]
    assert clus and all(r["identical"] for r in clus)
    # The distance stage is part of k-medoids, so the bound it gives is above the ratio achieved.
    assert all(r["distances_s"][0] < r["kmedoids_s"][0] for r in clus)
    assert all(r["loop_over_distances"] > r["loop_over_batched"] for r in clus)
    enc = res["items"]["encoder"]["rows"]
    keys = {r["key"] for r in enc}
    assert {"B32_T12_baseline", "B32_T12_kmedoids_B6-4-49", "B32_T12_spectral_B6-4-49", "B32_T12_pooling_B6-4",
            "B32_T12_sparse_B6-4-49", "B16_T12_kmedoids_B6-4-160", "B32_T60_kmedoids_B6-12-49"} <= keys
    for r in enc:
        assert r["ms_per_video_median"] > 0 and 0 < r["flop_ratio"] <= 1.0
        assert {"ratio_median", "ratio_min", "times_s", "load_at_group_start"} <= set(r)
    mem = res["items"]["memory"]["rows"]
    assert all("error" not in r for r in mem), mem
    for r in mem:
        assert r["peak_bytes"] > r["before_bytes"] > 0 and r["raw_ratio"] > 0 and r["step_ratio"] > 0
    assert {t["item"] for t in res["targets"]} >= {"clustering", "encoder", "memory"}
    assert all({"target", "value", "limit", "met"} <= set(t) for t in res["targets"])
