"""Shared fixtures: a tiny real dataset (synthetic videos -> ffmpeg -> HDF5) built once per session, a tiny
random CLIP, and the repository's experiment table and transcribed paper numbers."""

import os
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A synthetic MSR-VTT twin (8 train, 4 test videos) as manifest.csv + frames.h5."""
    from centerclip.data.layouts import write_manifest
    from centerclip.data.parsers import msrvtt_manifest
    from centerclip.data.compress import compress_many
    from centerclip.data.frame_cache import build_frame_cache
    from centerclip.data.synthetic.twins import make_msrvtt_twin

    root = tmp_path_factory.mktemp("tiny_msrvtt")
    make_msrvtt_twin(root / "raw", n_train=8, n_test=4, seed=7, captions_per_video=2)
    manifest = msrvtt_manifest(root / "raw" / "msrvtt_data", root / "raw" / "MSRVTT" / "videos" / "all")
    write_manifest(manifest, root / "manifest.csv")
    videos = manifest.drop_duplicates("video_id")
    items = [(src, str(root / "3fps" / f"{vid}.mp4")) for vid, src in zip(videos.video_id, videos.raw_path)]
    results, bad = compress_many(items, threads=2)
    assert not bad
    build_frame_cache([(Path(r["dst"]).stem, r["dst"]) for r in results], root / "frames.h5")
    return {"root": root, "manifest": root / "manifest.csv", "cache": root / "frames.h5"}


@pytest.fixture
def venv_env():
    """Environment for subprocesses: this interpreter's bin dir first on PATH."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="module")
def clip():
    """The tiny CLIP of tests/model_inputs.py (TINY), seed 0, in eval mode."""
    import torch

    from centerclip.model.clip import CLIP

    try:
        from tests.model_inputs import TINY
    except ImportError:  # tests/ itself on sys.path, not the repository root
        from model_inputs import TINY
    torch.manual_seed(0)
    return CLIP(TINY).eval()


@pytest.fixture(scope="module")
def experiments() -> dict:
    """config/experiments.yaml's ``experiments:`` table."""
    return yaml.safe_load((REPO / "config" / "experiments.yaml").read_text(encoding="utf-8"))["experiments"]


@pytest.fixture(scope="module")
def paper_numbers() -> dict:
    """config/paper_numbers.yaml: the paper's tables as transcribed."""
    return yaml.safe_load((REPO / "config" / "paper_numbers.yaml").read_text(encoding="utf-8"))


# Wall time per test file (set-up, call and teardown of its tests, module fixtures included), printed at
# the end of every run: where `make test`'s time goes, without --durations' per-test noise.
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _FILE_SECONDS:
        return
    total = sum(_FILE_SECONDS.values())
    terminalreporter.section("seconds per test file")
    for path, seconds in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:8.1f}  {path}")
    terminalreporter.write_line(f"{total:8.1f}  in all ({total / 60:.1f} min)")
