"""Downloads, extraction and dataset upstreams against a local HTTP server on 127.0.0.1.

The server (``tests/http_server.py``: ThreadingHTTPServer, port 0, one thread) serves generated
bytes and archives and can honour Range, ignore it (always 200), drop the connection after N
bytes, or stall; it records the Range header of every request so resumption is asserted, not
assumed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from centerclip.data.archives import extract
from centerclip.data.digests import DownloadError, read_digest_manifest
from centerclip.data.fetch import download
from centerclip.data.upstreams import (UPSTREAMS, MissingDataError, acquire, check_placed_files, resolve_upstream,
                                       sha256_from_openai_url)

try:
    from tests.http_server import LocalServer, ServerState
except ImportError:  # tests/ itself on sys.path, not the repository root
    from http_server import LocalServer, ServerState


def payload(n: int, seed: int = 0) -> bytes:
    """Deterministic incompressible-ish bytes."""
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:  # bounded: grows by 32 bytes per pass
        out += block
        block = hashlib.sha256(block).digest()
    return bytes(out[:n])


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


FAST = dict(backoff=0.0, timeout=5, progress=True)
DATA = payload(300_000)


def serve(**kw) -> LocalServer:
    files = kw.pop("files", {"/f.bin": DATA})
    return LocalServer(ServerState(files=files, **kw))


# ---------------------------------------------------------------------------------------------
# download()
# ---------------------------------------------------------------------------------------------

def test_plain_download_with_sha256(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="centerclip.data.fetch")
    with serve() as srv:
        out = download(srv.url("/f.bin"), tmp_path / "a" / "f.bin", sha256=sha(DATA), chunk_size=4096, **FAST)
    assert out.read_bytes() == DATA
    assert not (tmp_path / "a" / "f.bin.part").exists()
    assert srv.state.ranges == [None]
    # Not a terminal: progress is a log line per ~10%, not a bar.
    percent_lines = [r.getMessage() for r in caplog.records if "%" in r.getMessage()]
    assert 8 <= len(percent_lines) <= 11 and percent_lines[-1].startswith("f.bin: 100%")


def test_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with serve() as srv:
        out = download(srv.url("/f.bin"), tmp_path / "f.bin", sha256=sha(DATA), chunk_size=4096, **FAST)
    assert out.read_bytes() == DATA


def test_interrupted_transfer_is_resumed_with_range(tmp_path):
    with serve(drop_after=100_000, drops=2) as srv:
        out = download(srv.url("/f.bin"), tmp_path / "f.bin", sha256=sha(DATA), chunk_size=8192, **FAST)
    assert out.read_bytes() == DATA
    # First request plain, then it resumes after each cut: 100k, then 200k bytes on disk.
    assert srv.state.ranges == [None, "bytes=100000-", "bytes=200000-"]


def test_stalled_transfer_times_out_and_resumes(tmp_path):
    with serve(drop_after=50_000, drops=1, stall=0.8) as srv:
        out = download(srv.url("/f.bin"), tmp_path / "f.bin", sha256=sha(DATA), chunk_size=8192,
                       retries=2, backoff=0.0, timeout=0.3)
    assert out.read_bytes() == DATA
    # Resumed from what reached the disk: whole chunks only (the chunk cut by the timeout is lost).
    resumed_at = int(srv.state.ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at <= 50_000 and len(srv.state.ranges) == 2


def test_resume_from_existing_part_and_complete_part(tmp_path):
    dst = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(DATA[:1234])
    with serve() as srv:
        download(srv.url("/f.bin"), dst, sha256=sha(DATA), **FAST)
        assert srv.state.ranges == ["bytes=1234-"]
        # A part that is already complete: the server answers 416, the part is verified and kept.
        dst.rename(tmp_path / "f.bin.part")
        download(srv.url("/f.bin"), dst, sha256=sha(DATA), **FAST)
        assert srv.state.ranges[-1] == f"bytes={len(DATA)}-"
        # A stale part longer than the remote file: 416, start over.
        dst.unlink()
        (tmp_path / "f.bin.part").write_bytes(DATA + b"stale tail")
        download(srv.url("/f.bin"), dst, sha256=sha(DATA), **FAST)
        assert srv.state.ranges[-1] is None
    assert dst.read_bytes() == DATA and not (tmp_path / "f.bin.part").exists()


def test_server_ignoring_range_still_correct(tmp_path):
    with serve(honour_range=False, drop_after=120_000, drops=1) as srv:
        out = download(srv.url("/f.bin"), tmp_path / "f.bin", sha256=sha(DATA), chunk_size=8192, **FAST)
    assert out.read_bytes() == DATA
    assert srv.state.ranges == [None, "bytes=120000-"]  # asked to resume, got 200, restarted from 0


def test_corrupt_download_is_deleted_and_reported(tmp_path):
    wrong = sha(b"something else")
    with serve() as srv, pytest.raises(DownloadError) as exc:
        download(srv.url("/f.bin"), tmp_path / "f.bin", sha256=wrong, **FAST)
    msg = str(exc.value)
    assert srv.url("/f.bin") in msg and wrong in msg and sha(DATA) in msg
    assert exc.value.expected == wrong and exc.value.actual == sha(DATA)
    assert list(tmp_path.iterdir()) == []  # neither dst nor .part


def test_404_is_reported_with_url_and_status(tmp_path):
    with serve() as srv, pytest.raises(DownloadError) as exc:
        download(srv.url("/missing.zip"), tmp_path / "m.zip", **FAST)
    assert srv.url("/missing.zip") in str(exc.value) and "404" in str(exc.value)
    assert exc.value.status == 404 and exc.value.__cause__ is None and exc.value.__suppress_context__
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_retries_then_fails_clearly(tmp_path):
    with serve() as srv:
        url = srv.url("/f.bin")
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"after 3 attempts: http://127\.0\.0\.1:\d+/f\.bin"):
        download(url, tmp_path / "f.bin", retries=2, backoff=0.01, timeout=2)
    assert time.monotonic() - t0 < 5


def test_digest_manifest_records_verifies_and_detects_change(tmp_path):
    manifest = tmp_path / "config" / "download_digests.tsv"
    with serve() as srv:
        url = srv.url("/f.bin")
        download(url, tmp_path / "1" / "f.bin", digest_manifest=manifest, **FAST)
        assert read_digest_manifest(manifest) == {url: (sha(DATA), len(DATA))}
        assert manifest.read_text().splitlines()[0] == "url\tsha256\tbytes"
        download(url, tmp_path / "2" / "f.bin", digest_manifest=manifest, **FAST)  # verified against it
        srv.state.files["/f.bin"] = DATA[:-1] + b"X"  # changed at the source
        with pytest.raises(DownloadError, match="download_digests.tsv") as exc:
            download(url, tmp_path / "3" / "f.bin", digest_manifest=manifest, **FAST)
    assert exc.value.expected == sha(DATA)
    assert not (tmp_path / "3" / "f.bin").exists() and not (tmp_path / "3" / "f.bin.part").exists()
    assert read_digest_manifest(manifest) == {url: (sha(DATA), len(DATA))}  # not overwritten


def test_existing_dst_is_verified_not_refetched(tmp_path):
    dst = tmp_path / "f.bin"
    with serve() as srv:
        download(srv.url("/f.bin"), dst, sha256=sha(DATA), **FAST)
        download(srv.url("/f.bin"), dst, sha256=sha(DATA), **FAST)
        assert len(srv.state.ranges) == 1
        dst.write_bytes(b"damaged")  # damaged afterwards: fetched again
        download(srv.url("/f.bin"), dst, sha256=sha(DATA), **FAST)
        assert len(srv.state.ranges) == 2 and dst.read_bytes() == DATA


def test_file_url_and_local_path_sources(tmp_path):
    src = tmp_path / "mirror dir" / "f.bin"
    src.parent.mkdir()
    src.write_bytes(DATA)
    a = download(src.as_uri(), tmp_path / "a.bin", sha256=sha(DATA), progress=False)
    b = download(str(src), tmp_path / "b.bin", sha256=sha(DATA))
    assert a.read_bytes() == DATA == b.read_bytes()
    with pytest.raises(DownloadError, match="no such file"):
        download(str(tmp_path / "nope.bin"), tmp_path / "c.bin")
    with pytest.raises(DownloadError):
        download(str(src), tmp_path / "d.bin", sha256=sha(b"x"))
    assert not (tmp_path / "d.bin").exists() and not (tmp_path / "d.bin.part").exists()


# ---------------------------------------------------------------------------------------------
# extract()
# ---------------------------------------------------------------------------------------------

def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def make_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz", links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return path


def test_zip_and_tar_extraction_atomic_with_marker(tmp_path):
    z = make_zip(tmp_path / "msrvtt_data.zip", {"msrvtt_data/a.json": b"{}", "msrvtt_data/sub/b.csv": b"x"})
    out = extract(z, tmp_path / "root" / "msrvtt_data")
    assert (out / "a.json").read_bytes() == b"{}" and (out / "sub" / "b.csv").exists()  # top dir stripped
    assert (out / ".extracted").read_text().strip() == "msrvtt_data.zip"
    t = make_tar(tmp_path / "v.tar.gz", {"x/1.avi": b"1", "y/2.avi": b"2"})
    out = extract(t, tmp_path / "root" / "videos")
    assert (out / "x" / "1.avi").exists() and (out / "y" / "2.avi").exists() and (out / ".extracted").exists()
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["msrvtt_data", "videos"]  # no leftovers
    assert extract(t, out) == out  # done already: kept
    plain = make_tar(tmp_path / "YouTubeClips.tar", {"YouTubeClips/a.avi": b"a"}, mode="w")
    assert (extract(plain, tmp_path / "root" / "YouTubeClips") / "a.avi").exists()


def test_macos_resource_forks_beside_the_top_folder_are_not_content(tmp_path):
    archive = make_zip(tmp_path / "msrvtt_data.zip", {"msrvtt_data/MSRVTT_data.json": b"{}",
                                                      "__MACOSX/msrvtt_data/._MSRVTT_data.json": b"\0\5\x16\7"})
    dest = extract(archive, tmp_path / "root" / "msrvtt_data")
    assert (dest / "MSRVTT_data.json").read_bytes() == b"{}"
    assert not (dest / "__MACOSX").exists() and not (dest / "msrvtt_data").exists()


def test_half_extracted_dir_is_not_taken_as_done(tmp_path):
    z = make_zip(tmp_path / "a.zip", {"f.txt": b"1"})
    partial = tmp_path / ".dest.partial-999999999"  # a killed extraction (no such pid)
    partial.mkdir()
    (partial / "f.txt").write_bytes(b"half")
    out = extract(z, tmp_path / "dest")
    assert (out / "f.txt").read_bytes() == b"1" and not partial.exists()
    unfinished = tmp_path / "other"
    unfinished.mkdir()
    (unfinished / "f.txt").write_bytes(b"?")
    with pytest.raises(DownloadError, match="no .extracted marker"):
        extract(z, unfinished)


@pytest.mark.parametrize("kind,name", [("zip", "../evil.txt"), ("zip", "/abs/evil.txt"),
                                       ("tar", "a/../../evil.txt"), ("tar", "/etc/evil")])
def test_path_traversal_is_refused(tmp_path, kind, name):
    members = {"ok.txt": b"ok", name: b"evil"}
    arch = (make_zip(tmp_path / "bad.zip", members) if kind == "zip"
            else make_tar(tmp_path / "bad.tar.gz", members))
    with pytest.raises(DownloadError, match="unsafe member"):
        extract(arch, tmp_path / "out" / "dest")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_tar_symlink_out_of_tree_is_refused(tmp_path):
    arch = make_tar(tmp_path / "l.tar.gz", {"a/ok.txt": b"ok"}, links={"a/link": "../../outside"})
    with pytest.raises(DownloadError, match="pointing outside"):
        extract(arch, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_truncated_archive_is_reported(tmp_path):
    t = make_tar(tmp_path / "t.tar.gz", {"a.bin": payload(50_000)})
    (tmp_path / "cut.tar.gz").write_bytes(t.read_bytes()[:-2000])
    with pytest.raises(DownloadError, match="cut.tar.gz"):
        extract(tmp_path / "cut.tar.gz", tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


# ---------------------------------------------------------------------------------------------
# upstreams
# ---------------------------------------------------------------------------------------------

def test_sha256_from_openai_url():
    assert sha256_from_openai_url(UPSTREAMS["clip_vit_b32"].downloads["weights"].url) == (
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af")
    assert sha256_from_openai_url(UPSTREAMS["clip_vit_b16"].downloads["weights"].url) == (
        "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f")
    assert UPSTREAMS["clip_vit_b16"].downloads["weights"].sha256.startswith("5806e77c")
    with pytest.raises(ValueError):
        sha256_from_openai_url("https://example.org/models/ViT-B-32.pt")


def test_check_placed_files_lists_everything_missing(tmp_path):
    root = tmp_path / "lsmdc"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "LSMDC16_annos_val.csv").write_text("x\n")
    (root / "videos").mkdir()  # empty: still missing
    with pytest.raises(MissingDataError) as exc:
        check_placed_files("lsmdc", root)
    msg = str(exc.value)
    for name in ("annotations/LSMDC16_annos_training.csv", "annotations/LSMDC16_challenge_1000_publictect.csv",
                 "videos/"):
        assert str(root.absolute() / name.rstrip("/")) in msg
    assert "LSMDC16_annos_val.csv" not in msg and "https://sites.google.com/site/describingmovies/" in msg
    assert "3 of 3" in msg  # the val file is optional: not counted

    with pytest.raises(MissingDataError) as exc:
        check_placed_files("activitynet", tmp_path / "anet")
    msg = str(exc.value)
    for name in ("annotations/train.json", "annotations/val_1.json", "videos"):
        assert str((tmp_path / "anet").absolute() / name) in msg
    assert "cs.stanford.edu/people/ranjaykrishna/densevid" in msg and "activity-net.org" in msg

    for name in ("annotations/LSMDC16_annos_training.csv", "annotations/LSMDC16_challenge_1000_publictect.csv",
                 "videos/1001_x.avi"):
        (root / name).write_text("x\n")
    check_placed_files("lsmdc", root)  # complete: silent
    (root / "annotations" / "LSMDC16_annos_val.csv").unlink()
    check_placed_files("lsmdc", root)  # val is optional


def test_resolve_upstream_existing_dir_and_mirrors(tmp_path):
    root = tmp_path / "MSRVTT-root"
    for r in UPSTREAMS["msrvtt"].required:
        p = root / r.path / ("v.mp4" if r.path.endswith("/") else "")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("x")
    res = resolve_upstream("msrvtt", {"source": str(root)})
    assert res.existing == root and res.downloads == {}
    (root / "msrvtt_data" / "MSRVTT_train.7k.csv").unlink()
    with pytest.raises(MissingDataError, match="MSRVTT_train.7k.csv.*msrvtt_data.zip"):
        resolve_upstream("msrvtt", {"source": str(root)})
    res = resolve_upstream("clip_vit_b32", {"mirror": {"weights": "/shared/ViT-B-32.pt"}})
    assert res.downloads["weights"].url == "/shared/ViT-B-32.pt"
    assert res.downloads["weights"].sha256 == UPSTREAMS["clip_vit_b32"].downloads["weights"].sha256
    with pytest.raises(ValueError, match="valid: annotations, videos"):
        resolve_upstream("msrvtt", {"mirror": {"video": "http://x"}})
    with pytest.raises(ValueError, match="source:"):
        resolve_upstream("lsmdc", {"mirror": {"videos": "http://x"}})


def test_acquire_msrvtt_from_mirror_end_to_end(tmp_path):
    ann = make_zip(tmp_path / "a.zip", {f"msrvtt_data/{n}": b"x" for n in (
        "MSRVTT_data.json", "MSRVTT_train.7k.csv", "MSRVTT_train.9k.csv", "MSRVTT_JSFUSION_test.csv")})
    vids = make_zip(tmp_path / "v.zip", {"MSRVTT/videos/all/video0.mp4": b"v0", "MSRVTT/annotation/x": b""})
    manifest = tmp_path / "digests.tsv"
    with serve(files={"/msrvtt_data.zip": ann.read_bytes(), "/MSRVTT.zip": vids.read_bytes()},
               drop_after=500, drops=1) as srv:
        cfg = {"mirror": {"annotations": srv.url("/msrvtt_data.zip"), "videos": srv.url("/MSRVTT.zip")}}
        root = acquire("msrvtt", tmp_path / "raw", cfg, digest_manifest=manifest, **FAST)
        assert (root / "MSRVTT" / "videos" / "all" / "video0.mp4").read_bytes() == b"v0"
        assert (root / "msrvtt_data" / "MSRVTT_data.json").exists()
        assert len(read_digest_manifest(manifest)) == 2
        n = len(srv.state.ranges)
        acquire("msrvtt", tmp_path / "raw", cfg, digest_manifest=manifest, **FAST)  # nothing fetched again
        assert len(srv.state.ranges) == n
    with pytest.raises(MissingDataError, match="LSMDC"):
        acquire("lsmdc", tmp_path / "lsmdc")
