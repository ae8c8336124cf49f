"""Local stand-ins for the upstream servers: the files MSR-VTT, MSVD and CLIP are downloaded from,
built from the synthetic twins in the layout the real servers hold them, and served on 127.0.0.1.

Each builder writes under ``out_dir`` at the *URL path of the real file* (so one server on
``out_dir`` mirrors every host, and a file's mirror URL is ``server.url(<real URL path>)``):

===========================================================  =====================================
``ArrowLuo/CLIP4Clip/releases/download/v0.0/msrvtt_data.zip``  ``msrvtt_data/`` + MSRVTT_data.json,
                                                               MSRVTT_JSFUSION_test.csv,
                                                               MSRVTT_train.{7k,9k}.csv
``~maxbain/frozen-in-time/data/MSRVTT.zip``                    ``MSRVTT/videos/all/videoN.mp4`` plus
                                                               stand-ins of the other real members:
                                                               ``MSRVTT/annotation/MSR_VTT.json``,
                                                               ``MSRVTT/high-quality/structured-symlinks/*``
``ArrowLuo/CLIP4Clip/releases/download/v0.0/msvd_data.zip``    ``msvd_data/`` + raw-captions.pkl,
                                                               {train,val,test}_list.txt
``users/ml/clamp/videoDescription/YouTubeClips.tar``           ``YouTubeClips/<id>.avi`` (plain tar)
``clip/models/<sha256>/ViT-B-32.pt``                           OpenAI-layout TorchScript archive
``mzhaoshuai/CenterCLIP/<commit>/misc/splits/activitynet/*``   a twin's train_ids.json, val_ids.json,
                                                               video_path.json (:meth:`Upstream.activitynet_lists`)
===========================================================  =====================================

Zip archives carry explicit directory entries, as ``zip -r`` writes them. The CLIP archive is what
OpenAI ships, with random weights: a ``torch.jit.trace`` of the full model (image + text towers,
OpenAI's module tree: ``nn.MultiheadAttention``, ``nn.Conv2d``, ...) saved in fp16, with the
``input_resolution`` / ``context_length`` / ``vocab_size`` entries, at full ViT-B/32 or ViT-B/16 size
(~300 MB); like OpenAI's URLs, its path carries its own sha256.

:class:`Upstream` builds everything into one directory once and serves it;
:func:`upstream_fixture` makes that a pytest fixture::

    upstream = upstream_fixture()                       # in a test module or conftest.py

    def test_x(upstream, tmp_path):
        acquire("msrvtt", tmp_path / "raw", upstream.mirror("msrvtt"))
        backbone = upstream.backbone("ViT-B/32")        # {"mirror": url, "sha256": digest}
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tarfile
import threading
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from centerclip.data.digests import file_sha256
from centerclip.data.layouts import LAYOUTS, MSRVTT_FILES, MSVD_FILES
from centerclip.data.synthetic.twins import make_msrvtt_twin, make_msvd_twin
from centerclip.data.upstreams import CLIP_RELEASES, UPSTREAMS
from reference_clip import ReferenceCLIP

try:
    from tests.http_server import LocalServer, serve_directory
except ImportError:  # tests/ itself on sys.path
    from http_server import LocalServer, serve_directory

#: Default sizes: a few videos, enough for a global batch of 8 training pairs.
MSRVTT_SIZES = {"n_train": 16, "n_test": 8}
MSVD_SIZES = {"n_train": 12, "n_val": 4, "n_test": 8}

#: OpenAI CLIP ViT configurations (CLIPConfig field order: embed_dim, image_resolution, vision_layers,
#: vision_width, vision_patch_size, context_length, vocab_size, transformer_width, heads, layers).
CLIP_MODELS = {
    "ViT-B/32": (512, 224, 12, 768, 32, 77, 49408, 512, 8, 12),
    "ViT-B/16": (512, 224, 12, 768, 16, 77, 49408, 512, 8, 12),
}

_cache: dict[tuple, Any] = {}
_cache_lock = threading.Lock()


def upstream_path(dataset: str, download: str) -> str:
    """The URL path of ``dataset``'s default ``download`` (e.g. ``/~maxbain/frozen-in-time/data/MSRVTT.zip``)."""
    return urlsplit(UPSTREAMS[dataset].downloads[download].url).path


def _dest(out_dir: Path, url_path: str) -> Path:
    return out_dir.joinpath(*url_path.strip("/").split("/"))


# ---------------------------------------------------------------------------------------------
# Archives
# ---------------------------------------------------------------------------------------------

Member = tuple[str, "Path | bytes | None"]  # (archive name, file / bytes / None for a directory)


def _write_zip(dst: Path, members: Sequence[Member]) -> Path:
    """Write a zip (atomically: a hidden temporary, then renamed) from ``members`` in order.
    Files are streamed from disk; already-compressed media are stored, the rest deflated."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for name, content in members:
            if content is None:
                zf.mkdir(name.rstrip("/"))
                continue
            store = name.endswith((".mp4", ".avi", ".mkv", ".webm"))
            kind = zipfile.ZIP_STORED if store else zipfile.ZIP_DEFLATED
            if isinstance(content, Path):
                zf.write(content, name, compress_type=kind)
            else:
                zf.writestr(name, content, compress_type=kind)
    os.replace(tmp, dst)
    return dst


def _write_tar(dst: Path, top: str, src_dir: Path) -> Path:
    """An uncompressed tar of ``src_dir`` as ``top/`` (directory entry first, then sorted files)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tf:
        tf.add(src_dir, arcname=top, recursive=False)
        for path in sorted(p for p in src_dir.iterdir() if p.is_file()):
            tf.add(path, arcname=f"{top}/{path.name}")
    os.replace(tmp, dst)
    return dst


def _videos(video_dir: Path, suffix: str) -> list[Path]:
    return sorted((p for p in video_dir.glob(f"*{suffix}") if not p.name.startswith(".")),
                  key=lambda p: (len(p.stem), p.stem))


def _tidy(out_dir: Path, stage: Path) -> None:
    """Remove a staging directory, and ``.twins/`` once empty."""
    shutil.rmtree(stage, ignore_errors=True)
    try:
        (out_dir / ".twins").rmdir()
    except OSError:  # not empty (another build) or gone
        pass


def _cached(key: tuple, paths_of, build):
    """``build()`` once per key while the files it returned still exist."""
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and all(p.is_file() for p in paths_of(hit)):
            return hit
        result = build()
        _cache[key] = result
        return result


# ---------------------------------------------------------------------------------------------
# MSR-VTT
# ---------------------------------------------------------------------------------------------

def _msrvtt_extras(ann_dir: Path) -> list[Member]:
    """Stand-ins for the other members of frozen-in-time's MSRVTT.zip, from the twin's annotations:
    ``annotation/MSR_VTT.json`` (COCO-style) and ``high-quality/structured-symlinks/`` (CE splits)."""
    data = json.loads((ann_dir / MSRVTT_FILES["captions"]).read_text())
    ids = [v["video_id"] for v in data["videos"]]
    test = [v["video_id"] for v in data["videos"] if v.get("split") == "test"]
    train = [v for v in ids if v not in set(test)]
    captions: dict[str, list[str]] = {v: [] for v in ids}
    for s in data["sentences"]:
        captions[s["video_id"]].append(s["caption"])
    coco = {"info": {"description": "MSR-VTT (synthetic stand-in)"}, "type": "captions",
            "images": [{"id": v} for v in ids],
            "annotations": [{"caption": s["caption"], "id": s["sen_id"], "image_id": s["video_id"]}
                            for s in data["sentences"]]}
    sym = "MSRVTT/high-quality/structured-symlinks/"
    return [
        ("MSRVTT/annotation/", None),
        ("MSRVTT/annotation/MSR_VTT.json", json.dumps(coco).encode()),
        ("MSRVTT/high-quality/", None),
        (sym, None),
        (sym + "raw-captions.pkl", pickle.dumps({v: [c.split() for c in cs] for v, cs in captions.items()})),
        (sym + "train_list_jsfusion.txt", "".join(f"{v}\n" for v in train).encode()),
        (sym + "val_list_jsfusion.txt", "".join(f"{v}\n" for v in test).encode()),
        (sym + "jsfusion_val_caption_idx.pkl", pickle.dumps({v: 0 for v in test})),
    ]


def build_msrvtt(out_dir: str | os.PathLike, n_train: int = 16, n_test: int = 8, *, seed: int = 0,
                 captions_per_video: int = 4, threads: int = 2) -> dict[str, Path]:
    """Write MSR-VTT's two downloads under ``out_dir`` (at their real URL paths) from a synthetic
    twin of ``n_train`` (9k-style list; the 7k list is its first 7/9) + ``n_test`` (1k-A) videos.

    Returns ``{"annotations": msrvtt_data.zip, "videos": MSRVTT.zip}`` (the download names of
    ``UPSTREAMS["msrvtt"]``). Cached per (directory, arguments) for the process.
    """
    out_dir = Path(out_dir).resolve()
    key = ("msrvtt", str(out_dir), n_train, n_test, seed, captions_per_video)

    def build() -> dict[str, Path]:
        stage = out_dir / ".twins" / "msrvtt"
        shutil.rmtree(stage, ignore_errors=True)
        make_msrvtt_twin(stage, n_train, n_test, seed=seed, captions_per_video=captions_per_video,
                         threads=threads)
        ann, vids = stage / LAYOUTS["msrvtt"].annotation_dir, stage / LAYOUTS["msrvtt"].video_dir
        annotations = _write_zip(_dest(out_dir, upstream_path("msrvtt", "annotations")), [
            ("msrvtt_data/", None),
            *((f"msrvtt_data/{name}", ann / name) for name in sorted(MSRVTT_FILES.values())),
        ])
        videos = _write_zip(_dest(out_dir, upstream_path("msrvtt", "videos")), [
            ("MSRVTT/", None),
            *_msrvtt_extras(ann),
            ("MSRVTT/videos/", None),
            ("MSRVTT/videos/all/", None),
            *((f"MSRVTT/videos/all/{p.name}", p) for p in _videos(vids, ".mp4")),
        ])
        _tidy(out_dir, stage)
        return {"annotations": annotations, "videos": videos}

    return _cached(key, lambda r: r.values(), build)


# ---------------------------------------------------------------------------------------------
# MSVD
# ---------------------------------------------------------------------------------------------

def build_msvd(out_dir: str | os.PathLike, n_train: int = 12, n_val: int = 4, n_test: int = 8, *,
               seed: int = 0, captions_per_video: int = 8, threads: int = 2) -> dict[str, Path]:
    """Write MSVD's two downloads under ``out_dir`` (at their real URL paths) from a synthetic twin.

    Returns ``{"annotations": msvd_data.zip, "videos": YouTubeClips.tar}``. Cached per
    (directory, arguments) for the process.
    """
    out_dir = Path(out_dir).resolve()
    key = ("msvd", str(out_dir), n_train, n_val, n_test, seed, captions_per_video)

    def build() -> dict[str, Path]:
        stage = out_dir / ".twins" / "msvd"
        shutil.rmtree(stage, ignore_errors=True)
        make_msvd_twin(stage, n_train, n_val, n_test, seed=seed, captions_per_video=captions_per_video,
                       threads=threads)
        ann = stage / LAYOUTS["msvd"].annotation_dir
        order = [MSVD_FILES[k] for k in ("captions", "train", "val", "test")]
        annotations = _write_zip(_dest(out_dir, upstream_path("msvd", "annotations")), [
            ("msvd_data/", None), *((f"msvd_data/{name}", ann / name) for name in order)])
        videos = _write_tar(_dest(out_dir, upstream_path("msvd", "videos")), "YouTubeClips",
                            stage / LAYOUTS["msvd"].video_dir)
        _tidy(out_dir, stage)
        return {"annotations": annotations, "videos": videos}

    return _cached(key, lambda r: r.values(), build)


# ---------------------------------------------------------------------------------------------
# CLIP: OpenAI's parameter layout (tests/reference_clip.py), traced and saved as OpenAI released it
# ---------------------------------------------------------------------------------------------

def _clip_file_name(model: str) -> str:
    return Path(urlsplit(UPSTREAMS[CLIP_RELEASES[model]].downloads["weights"].url).path).name


def build_clip(out_dir: str | os.PathLike, model: str = "ViT-B/32", *, seed: int = 0) -> tuple[Path, str]:
    """Write an OpenAI-layout TorchScript CLIP ``model`` (``ViT-B/32`` or ``ViT-B/16``) with random
    weights to ``out_dir/clip/models/<sha256>/ViT-B-32.pt`` (OpenAI's URL layout) and return
    ``(path, sha256)``. Real size (~300 MB, fp16); about 10 s and ~1 GB of memory on 2 cores.
    Cached per (directory, model, seed) for the process.
    """
    if model not in CLIP_MODELS:
        raise ValueError(f"unknown CLIP model {model!r}; known: {', '.join(CLIP_MODELS)}")
    out_dir = Path(out_dir).resolve()
    key = ("clip", str(out_dir), model, seed)

    def build() -> tuple[Path, str]:
        import torch

        cfg = CLIP_MODELS[model]
        name = _clip_file_name(model)
        stage = out_dir / ".twins" / f"clip-{os.getpid()}"
        stage.mkdir(parents=True, exist_ok=True)
        tmp = stage / name  # the archive's inner folder is named after the file, as in OpenAI's
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit is deprecated; tracing warns about python ints
            torch.manual_seed(seed)
            net = ReferenceCLIP(*cfg).eval()
            net.register_buffer("input_resolution", torch.tensor(cfg[1]))
            net.register_buffer("context_length", torch.tensor(cfg[5]))
            net.register_buffer("vocab_size", torch.tensor(cfg[6]))
            image = torch.zeros(1, 3, cfg[1], cfg[1])
            text = torch.zeros(1, cfg[5], dtype=torch.long)
            text[0, :3] = torch.tensor([cfg[6] - 2, 320, cfg[6] - 1])  # <start> a <end>
            traced = torch.jit.trace(net, (image, text), check_trace=False)
            del net
            traced = traced.half()  # OpenAI's released archives are fp16
            torch.jit.save(traced, str(tmp))
            del traced
        digest = file_sha256(tmp)
        dst = out_dir / "clip" / "models" / digest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dst)
        _tidy(out_dir, stage)
        return dst, digest

    return _cached(key, lambda r: [r[0]], build)


# ---------------------------------------------------------------------------------------------
# ActivityNet: the original code's split lists (the dataset itself is placed, never downloaded)
# ---------------------------------------------------------------------------------------------

def build_activitynet_lists(out_dir: str | os.PathLike, lists_dir: str | os.PathLike) -> dict[str, Path]:
    """Copy an ActivityNet twin's three lists (``lists_dir``: its ``original_splits/``) under ``out_dir`` at
    the URL paths of the original code's lists; returns ``{download name: path}``."""
    out = {}
    for name, d in UPSTREAMS["activitynet"].downloads.items():
        dst = _dest(Path(out_dir).resolve(), upstream_path("activitynet", name))
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(lists_dir) / d.filename, dst)
        out[name] = dst
    return out


# ---------------------------------------------------------------------------------------------
# All of it, served
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipArchive:
    model: str
    path: Path
    url: str
    sha256: str


class Upstream:
    """The upstream files of MSR-VTT, MSVD and CLIP (and, on request, ActivityNet's lists) under ``root``,
    served on 127.0.0.1.

    ``msrvtt`` / ``msvd``: sizes for :func:`build_msrvtt` / :func:`build_msvd` (None: not built);
    ``clip``: models built by :meth:`build` (others are built on first :meth:`clip` call).
    Use ``with Upstream(...).build() as up:`` or :meth:`start` / :meth:`stop`.
    """

    def __init__(self, root: str | os.PathLike, *, msrvtt: dict | None = None, msvd: dict | None = None,
                 clip: Sequence[str] = ("ViT-B/32",), seed: int = 0, threads: int = 2) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.sizes = {"msrvtt": dict(MSRVTT_SIZES if msrvtt is None else msrvtt),
                      "msvd": dict(MSVD_SIZES if msvd is None else msvd)}
        self.clip_models = tuple(clip)
        self.seed, self.threads = seed, threads
        self.files: dict[str, dict[str, Path]] = {}
        self.timings: dict[str, float] = {}  # seconds spent building each artefact
        self._clips: dict[str, ClipArchive] = {}
        self.server: LocalServer = serve_directory(self.root)

    def build(self) -> "Upstream":
        """Build every dataset and the listed CLIP models (each at most once per process)."""
        for dataset in self.sizes:
            self.dataset_files(dataset)
        for model in self.clip_models:
            self.clip(model)
        return self

    def dataset_files(self, dataset: str) -> dict[str, Path]:
        """``{download name: archive path}`` of ``dataset`` (``msrvtt`` or ``msvd``), built if needed."""
        if dataset not in self.files:
            builder = {"msrvtt": build_msrvtt, "msvd": build_msvd}[dataset]
            t0 = time.perf_counter()
            self.files[dataset] = builder(self.root, **self.sizes[dataset], seed=self.seed, threads=self.threads)
            self.timings[dataset] = time.perf_counter() - t0
        return self.files[dataset]

    # -- serving --------------------------------------------------------------------------------
    def start(self) -> "Upstream":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> "Upstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def url_of(self, path: Path) -> str:
        return self.server.url("/" + path.relative_to(self.root).as_posix())

    # -- what the workflow config wants ---------------------------------------------------------
    def mirror(self, dataset: str) -> dict[str, dict[str, str]]:
        """``{"mirror": {download name: url}}`` for ``dataset`` (the per-dataset config entry)."""
        return {"mirror": {name: self.url_of(path) for name, path in self.dataset_files(dataset).items()}}

    def datasets_config(self) -> dict[str, dict[str, Any]]:
        """``datasets:`` entries of a workflow config downloading both datasets from here."""
        return {d: {"format": d, **self.mirror(d)} for d in self.sizes}

    def clip(self, model: str = "ViT-B/32") -> ClipArchive:
        """The CLIP archive of ``model`` (built on first use): path, mirror URL and sha256."""
        if model not in self._clips:
            t0 = time.perf_counter()
            path, digest = build_clip(self.root, model, seed=self.seed)
            self.timings[f"clip {model}"] = time.perf_counter() - t0
            self._clips[model] = ClipArchive(model, path, self.url_of(path), digest)
        return self._clips[model]

    def activitynet_lists(self, lists_dir: str | os.PathLike) -> dict[str, dict[str, str]]:
        """``{"mirror": {name: url}, "sha256": {name: digest}}`` serving an ActivityNet twin's lists
        (``lists_dir``) at the original's URL paths: the download part of the ``activitynet`` entry of a
        workflow config. The twin's lists are not the original's bytes, so their digests are given, as
        for a private mirror of other files."""
        files = build_activitynet_lists(self.root, lists_dir)
        return {"mirror": {name: self.url_of(path) for name, path in files.items()},
                "sha256": {name: file_sha256(path) for name, path in files.items()}}

    def backbone(self, model: str = "ViT-B/32") -> dict[str, str]:
        """``{"mirror": url, "sha256": digest}``: the download part of a ``backbones:`` entry."""
        arch = self.clip(model)
        return {"mirror": arch.url, "sha256": arch.sha256}


def upstream_fixture(scope: str = "session", **kwargs):
    """A pytest fixture yielding a built, started :class:`Upstream` in a temporary directory;
    ``kwargs`` go to :class:`Upstream`. Assign it to a name in a test module or conftest.py."""
    import pytest

    @pytest.fixture(scope=scope)
    def upstream(tmp_path_factory) -> Iterator[Upstream]:
        up = Upstream(tmp_path_factory.mktemp("upstream"), **kwargs).build()
        with up:
            yield up

    return upstream
