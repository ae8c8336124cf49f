"""Shared fixtures: a tiny real dataset (synthetic videos -> ffmpeg -> HDF5) built once per session."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A synthetic MSR-VTT twin (8 train, 4 test videos) as manifest.csv + frames.h5."""
    from centerclip.data.annotations import msrvtt_manifest, write_manifest
    from centerclip.data.compress import compress_many
    from centerclip.data.frame_cache import build_frame_cache
    from centerclip.data.synthetic import make_msrvtt_twin

    root = tmp_path_factory.mktemp("tiny_msrvtt")
    make_msrvtt_twin(root / "raw", n_train=8, n_test=4, seed=7, captions_per_video=2)
    manifest = msrvtt_manifest(root / "raw" / "msrvtt_data", root / "raw" / "MSRVTT" / "videos" / "all")
    write_manifest(manifest, root / "manifest.csv")
    videos = manifest.drop_duplicates("video_id")
    items = [(src, str(root / "3fps" / f"{vid}.mp4")) for vid, src in zip(videos.video_id, videos.source)]
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
