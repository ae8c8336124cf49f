"""The upstream stand-ins (tests/upstream.py) behave like the real servers' files: the project's
download + extraction code turns them into complete datasets, and the CLIP archive loads."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

import torch

from centerclip.model.clip import load
from centerclip.data.digests import read_digest_manifest
from centerclip.data.fetch import download
from centerclip.data.parsers import build_manifest
from centerclip.data.upstreams import UPSTREAMS, acquire, check_placed_files, sha256_from_openai_url

try:
    from tests.http_server import serve_directory
    from tests.upstream import MSRVTT_SIZES, MSVD_SIZES, build_clip, file_sha256, upstream_fixture, upstream_path
except ImportError:  # tests/ itself on sys.path
    from http_server import serve_directory
    from upstream import MSRVTT_SIZES, MSVD_SIZES, build_clip, file_sha256, upstream_fixture, upstream_path

REPO = Path(__file__).resolve().parent.parent
FAST = dict(backoff=0.0, timeout=10, progress=False)

# Datasets built up front; the ~300 MB CLIP archive only when a test asks for it.
upstream = upstream_fixture(scope="module", clip=())


def _top_level(names: list[str]) -> set[str]:
    return {n.split("/", 1)[0] for n in names}


def test_archives_have_the_real_layout(upstream):
    files = {d: upstream.dataset_files(d) for d in ("msrvtt", "msvd")}
    for dataset, by_name in files.items():
        assert set(by_name) == set(UPSTREAMS[dataset].downloads)  # one file per download name ...
        for name, path in by_name.items():  # ... at the real file's URL path
            assert "/" + path.relative_to(upstream.root).as_posix() == upstream_path(dataset, name)
    with zipfile.ZipFile(files["msrvtt"]["annotations"]) as zf:
        assert sorted(zf.namelist()) == ["msrvtt_data/", "msrvtt_data/MSRVTT_JSFUSION_test.csv",
                                         "msrvtt_data/MSRVTT_data.json", "msrvtt_data/MSRVTT_train.7k.csv",
                                         "msrvtt_data/MSRVTT_train.9k.csv"]
    with zipfile.ZipFile(files["msrvtt"]["videos"]) as zf:
        names = zf.namelist()
    n_videos = MSRVTT_SIZES["n_train"] + MSRVTT_SIZES["n_test"]
    assert _top_level(names) == {"MSRVTT"} and "MSRVTT/annotation/MSR_VTT.json" in names
    assert sorted(n for n in names if n.startswith("MSRVTT/videos/all/") and n.endswith(".mp4")) == sorted(
        f"MSRVTT/videos/all/video{i}.mp4" for i in range(n_videos))
    with zipfile.ZipFile(files["msvd"]["annotations"]) as zf:
        assert sorted(zf.namelist()) == ["msvd_data/", "msvd_data/raw-captions.pkl", "msvd_data/test_list.txt",
                                         "msvd_data/train_list.txt", "msvd_data/val_list.txt"]
    with tarfile.open(files["msvd"]["videos"]) as tf:  # plain (uncompressed) tar, as the real one
        members = tf.getmembers()
    assert members[0].name == "YouTubeClips" and members[0].isdir()
    assert len([m for m in members[1:] if m.isfile() and m.name.startswith("YouTubeClips/")
                and m.name.endswith(".avi")]) == sum(MSVD_SIZES.values())


def test_acquire_msrvtt_through_mirrors(upstream, tmp_path):
    cfg = upstream.mirror("msrvtt")
    assert set(cfg["mirror"]) == {"annotations", "videos"}
    assert all(url.startswith("http://127.0.0.1:") for url in cfg["mirror"].values())
    manifest = tmp_path / "digests.tsv"
    root = acquire("msrvtt", tmp_path / "raw", cfg, digest_manifest=manifest, **FAST)
    check_placed_files("msrvtt", root)
    assert sorted(read_digest_manifest(manifest)) == sorted(cfg["mirror"].values())
    # The real archive's other members are extracted alongside, the top folder is not doubled.
    assert (root / "MSRVTT" / "annotation" / "MSR_VTT.json").is_file()
    assert not (root / "MSRVTT" / "MSRVTT").exists() and not (root / "msrvtt_data" / "msrvtt_data").exists()

    n_train, n_test = MSRVTT_SIZES["n_train"], MSRVTT_SIZES["n_test"]
    n7 = round(n_train * 7 / 9)
    for split, n in (("9k", n_train), ("7k", n7)):
        m = build_manifest("msrvtt", root, train_split=split)
        train, test = m[m.split == "train"], m[m.split == "test"]
        assert train.video_id.nunique() == n and len(train) == 4 * n  # 4 captions per training video
        assert test.video_id.nunique() == n_test and len(test) == n_test  # 1k-A style: one caption each
        assert all(Path(s).is_file() for s in m.raw_path)


def test_acquire_msvd_through_mirrors(upstream, tmp_path):
    root = acquire("msvd", tmp_path / "raw", upstream.mirror("msvd"), **FAST)
    check_placed_files("msvd", root)
    m = build_manifest("msvd", root)
    counts = m.groupby("split").video_id.nunique().to_dict()
    assert counts == {"train": MSVD_SIZES["n_train"], "val": MSVD_SIZES["n_val"], "test": MSVD_SIZES["n_test"]}
    assert len(m) == 8 * sum(MSVD_SIZES.values())  # 8 captions per video
    assert all(Path(s).is_file() and s.endswith(".avi") for s in m.raw_path)


def test_datasets_config_entries(upstream):
    cfg = upstream.datasets_config()
    assert cfg["msrvtt"]["format"] == "msrvtt" and cfg["msrvtt"]["mirror"] == upstream.mirror("msrvtt")["mirror"]
    assert cfg["msvd"]["mirror"]["videos"].endswith("/users/ml/clamp/videoDescription/YouTubeClips.tar")


def test_clip_archive_is_openai_layout_and_loads(upstream):
    arch = upstream.clip("ViT-B/32")
    assert arch.path.name == "ViT-B-32.pt" and arch.path.stat().st_size > 250e6  # real size, fp16
    assert file_sha256(arch.path) == arch.sha256 == sha256_from_openai_url(arch.url)
    assert upstream.backbone("ViT-B/32") == {"mirror": arch.url, "sha256": arch.sha256}
    with zipfile.ZipFile(arch.path) as zf:
        names = zf.namelist()
    assert _top_level(names) == {"ViT-B-32"} and any("/code/" in n for n in names)  # TorchScript
    with warnings.catch_warnings():  # torch.jit is deprecated, and the only reader of these archives
        warnings.simplefilter("ignore", DeprecationWarning)
        saved = torch.jit.load(str(arch.path), map_location="cpu").state_dict()
    assert {"input_resolution", "context_length", "vocab_size"} <= set(saved)
    assert saved["visual.proj"].dtype == torch.float16 and saved["visual.conv1.weight"].shape == (768, 3, 32, 32)
    del saved

    model = load(arch.path)
    cfg = model.config
    assert (cfg.embed_dim, cfg.image_resolution, cfg.vision_width, cfg.vision_patch_size) == (512, 224, 768, 32)
    assert (cfg.context_length, cfg.vocab_size, cfg.transformer_width, cfg.transformer_heads) == (77, 49408, 512, 8)
    assert len(model.visual.transformer.resblocks) == 12 and model.visual.transformer.width == 768
    assert len(model.transformer.resblocks) == 12
    with torch.no_grad():  # random weights, but a sane model: finite features
        image = model.encode_image(torch.zeros(1, 3, 224, 224))
        text = model.encode_text(torch.tensor([[49406, 320, 49407]]))
    assert image.shape == text.shape == (1, 512) and torch.isfinite(image).all() and torch.isfinite(text).all()


def test_interrupted_download_of_the_clip_archive_resumes_with_range(upstream, tmp_path):
    arch = upstream.clip("ViT-B/32")
    url_path = "/" + arch.path.relative_to(upstream.root).as_posix()
    cut = 100_000_000
    with serve_directory(upstream.root, drop_after=cut, drops=1) as srv:
        out = download(srv.url(url_path), tmp_path / "ViT-B-32.pt", sha256=arch.sha256, chunk_size=1 << 20,
                       **FAST)
    assert srv.state.ranges == [None, f"bytes={cut}-"]
    assert out.stat().st_size == arch.path.stat().st_size and not (tmp_path / "ViT-B-32.pt.part").exists()


def test_directory_server_ranges_and_refusals(tmp_path):
    data = bytes(range(256)) * 40
    (tmp_path / "sub dir").mkdir()
    (tmp_path / "sub dir" / "f.bin").write_bytes(data)
    (tmp_path / ".hidden").write_bytes(b"x")

    def get(url: str, rng: str | None = None, method: str = "GET"):
        req = urllib.request.Request(url, headers={"Range": rng} if rng else {}, method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.headers, b""

    with serve_directory(tmp_path) as srv:
        url = srv.url("/sub dir/f.bin")
        assert "%20" in url
        status, headers, body = get(url)
        assert (status, body, headers["Accept-Ranges"], headers["Content-Length"]) == (200, data, "bytes",
                                                                                       str(len(data)))
        status, headers, body = get(url, "bytes=1000-")
        assert (status, body, headers["Content-Range"]) == (206, data[1000:], f"bytes 1000-{len(data) - 1}/{len(data)}")
        assert get(url, "bytes=10-19")[::2] == (206, data[10:20])
        assert get(url, "bytes=-5")[::2] == (206, data[-5:])
        status, headers, _ = get(url, f"bytes={len(data)}-")
        assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
        status, headers, body = get(url, method="HEAD")
        assert (status, body, headers["Content-Length"]) == (200, b"", str(len(data)))
        for bad in ("/.hidden", "/sub%20dir/../.hidden", "/missing.bin", "/"):
            assert get(srv.base_url + bad)[0] == 404
        (tmp_path / "late.txt").write_text("added after start")
        assert get(srv.url("/late.txt"))[2] == b"added after start"


def test_http_server_command_line(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "http_server.py"), str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        base = proc.stdout.readline().strip()
        assert base.startswith("http://127.0.0.1:") and base.endswith("/")
        with urllib.request.urlopen(base + "a.txt", timeout=5) as resp:
            assert resp.read() == b"hello"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_clip_vit_b16_archive(tmp_path):
    path, digest = build_clip(tmp_path, "ViT-B/16")
    assert path.parent.name == digest and path.name == "ViT-B-16.pt"
    model = load(path)
    assert (model.config.vision_patch_size, model.config.grid, model.config.vision_width) == (16, 14, 768)
    assert len(model.visual.transformer.resblocks) == 12
