"""Where each dataset and pretrained model comes from (its upstream), as data, and how to get it onto disk.

:data:`UPSTREAMS` is the one table of URLs and expected files. Public data (MSR-VTT, MSVD, the CLIP
weights) is downloaded and extracted by :func:`acquire`; licence-gated data (LSMDC, ActivityNet
Captions) is never downloaded: the user places the files and :func:`check_placed_files` says,
in one message, exactly which are missing, where they go and where they are obtained. A gated
upstream's own ``downloads`` are public files that come with it but are not the data: ActivityNet's
are the original CenterCLIP code's split lists, fetched by :func:`download_lists` into a folder the
caller owns (never into a ``source:`` copy, which may be read-only).

A dataset's required paths are not written here but derived from the layout its parser reads
(:data:`centerclip.data.layouts.LAYOUTS`), so the check, its message and the parser agree:
files put where the message says make :func:`~centerclip.data.parsers.build_manifest` work.

Per-dataset configuration (:func:`resolve_upstream`) can point at data already on disk
(``source: /path/to/MSRVTT-root``, used as is) or replace default URLs with mirrors
(``mirror: {videos: https://mirror.lab/MSRVTT.zip}``; a ``file://`` URL or plain path works too), and
name the sha256 a mirror serves where it is not the original's file (``sha256: {videos: <digest>}``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from centerclip.data.activitynet import ACTIVITYNET_LISTS, ACTIVITYNET_LISTS_URL
from centerclip.data.archives import extract
from centerclip.data.fetch import download
from centerclip.data.layouts import ACTIVITYNET_CAPTIONS_ZIP, LAYOUTS

log = logging.getLogger(__name__)


class MissingDataError(FileNotFoundError):
    """Required dataset files are not where they must be; the message lists them and their origin."""


@dataclass(frozen=True)
class Download:
    """One file to fetch. ``extract_to``: directory under the dataset root receiving the archive's
    contents (None: the file itself is the result, stored at ``root/filename``)."""

    url: str
    extract_to: str | None = None
    sha256: str | None = None

    @property
    def filename(self) -> str:
        return Path(urlsplit(self.url).path).name


@dataclass(frozen=True)
class Required:
    """A path that must exist under the dataset root (a trailing ``/`` = a non-empty directory),
    and where it is obtained (a download name of the same upstream, or words + URL for gated data).
    ``optional``: read when present, never needed (not counted missing; still listed in the message)."""

    path: str
    obtained: str
    optional: bool = False


@dataclass(frozen=True)
class Upstream:
    """Where a dataset (or model) comes from: what must end up under its root and how it gets there.

    ``downloads``: what is fetched, by download name (the names of ``mirror:``). For a ``gated`` upstream
    these are public side files, never among its placed ``required`` files (ActivityNet: the original
    code's split lists)."""

    title: str
    required: tuple[Required, ...]
    downloads: Mapping[str, Download] = field(default_factory=dict)
    gated: str | None = None  # why and where to sign up, for data that is never downloaded

    @property
    def needed(self) -> tuple[Required, ...]:
        """The entries that must be present (all but the optional ones)."""
        return tuple(r for r in self.required if not r.optional)

    def origin(self, item: Required) -> str:
        d = self.downloads.get(item.obtained)
        return f"{d.url} (download '{item.obtained}')" if d else item.obtained


def sha256_from_openai_url(url: str) -> str:
    """The sha256 OpenAI embeds in its CLIP URLs: the second-to-last path component."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    digest = parts[-2] if len(parts) >= 2 else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise ValueError(f"{url}: no sha256 as second-to-last path component")
    return digest.lower()


def _clip(url: str) -> Download:
    return Download(url, sha256=sha256_from_openai_url(url))


def _layout_required(dataset: str, annotations: str | Mapping[str, str], videos: str) -> tuple[Required, ...]:
    """The :class:`Required` entries of ``dataset``'s parser layout: every annotation file (optional
    where the parser skips it when absent), then the non-empty video directory. ``annotations``: where
    the annotation files are obtained, one text for all or one per file name; ``videos``: where the
    videos are obtained."""
    layout = LAYOUTS[dataset]
    per_file = annotations if isinstance(annotations, Mapping) else {n: annotations for n in layout.files.values()}
    return (*(Required(layout.annotation_path(role), per_file[name], optional=role in layout.optional)
              for role, name in layout.files.items()),
            Required(f"{layout.video_dir}/", videos))


_CLIP4CLIP = "https://github.com/ArrowLuo/CLIP4Clip/releases/download/v0.0"
_MPII = ("the LSMDC download page after the MPII sign-up (licence agreement): "
         "https://sites.google.com/site/describingmovies/")
_LSMDC_VIDEOS = (f"the LSMDC 2016 clips (.avi), laid out as {LAYOUTS['lsmdc'].video_dir}/{LAYOUTS['lsmdc'].videos} "
                 f"(as the per-movie archives unpack), from {_MPII}")
_ANET_CAPTIONS = {name: f"{ACTIVITYNET_CAPTIONS_ZIP}: move its captions/{name} here"
                  for name in LAYOUTS["activitynet"].files.values()}
_ANET_VIDEOS = (f"the ActivityNet v1.3 videos, laid out as {LAYOUTS['activitynet'].video_dir}/"
                f"{LAYOUTS['activitynet'].videos}, by request form at "
                "http://activity-net.org/download.html (many YouTube originals are gone)")
# sha256 of the original code's three ActivityNet lists at the commit of ACTIVITYNET_LISTS_URL
_ANET_LIST_SHA256 = {
    "train_ids.json": "7ef2f714c2ab399adbb3785a42f4938e37b9674321860ba665a0ca0dfee08d2d",  # 10,024 ids (v_<id>)
    "val_ids.json": "e809ce219a8cdc21a97a724500f373dcc066967497a554ded654bf71d9e8e59b",  # 4,926 ids (v_<id>)
    "video_path.json": "4803ce0d715f1998720c29364773741dd1e90505fc0fa1b3c9d5af93af61ad63",  # 19,831 <id> -> file
}

#: Every upstream the pipeline knows. Keys are the dataset formats / model names used in the config.
UPSTREAMS: dict[str, Upstream] = {
    "msrvtt": Upstream(
        title="MSR-VTT",
        downloads={
            "annotations": Download(f"{_CLIP4CLIP}/msrvtt_data.zip", extract_to="msrvtt_data"),
            "videos": Download("https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip",
                               extract_to="MSRVTT"),
        },
        required=_layout_required("msrvtt", "annotations", "videos"),
    ),
    "msvd": Upstream(
        title="MSVD",
        downloads={
            "annotations": Download(f"{_CLIP4CLIP}/msvd_data.zip", extract_to="msvd_data"),
            "videos": Download("https://www.cs.utexas.edu/users/ml/clamp/videoDescription/YouTubeClips.tar",
                               extract_to="YouTubeClips"),
        },
        required=_layout_required("msvd", "annotations", "videos"),
    ),
    "lsmdc": Upstream(
        title="LSMDC",
        gated="LSMDC is licence-gated (MPII): sign up at https://sites.google.com/site/describingmovies/ "
              "and place the files yourself; the pipeline never downloads them.",
        required=_layout_required("lsmdc", _MPII, _LSMDC_VIDEOS),
    ),
    "activitynet": Upstream(
        title="ActivityNet Captions",
        gated="ActivityNet videos are gated / partly expired at the source: place the files yourself; "
              "the pipeline never downloads them.",
        required=_layout_required("activitynet", _ANET_CAPTIONS, _ANET_VIDEOS),
        # not the data: the original code's lists of which videos each split holds (download names
        # train_ids, val_ids, video_path), public in its repository
        downloads={Path(name).stem: Download(ACTIVITYNET_LISTS_URL + name, sha256=_ANET_LIST_SHA256[name])
                   for name in ACTIVITYNET_LISTS.values()},
    ),
    "clip_vit_b32": Upstream(
        title="CLIP ViT-B/32",
        downloads={"weights": _clip("https://openaipublic.azureedge.net/clip/models/"
                                    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt")},
        required=(Required("ViT-B-32.pt", "weights"),),
    ),
    "clip_vit_b16": Upstream(
        title="CLIP ViT-B/16",
        downloads={"weights": _clip("https://openaipublic.azureedge.net/clip/models/"
                                    "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt")},
        required=(Required("ViT-B-16.pt", "weights"),),
    ),
}


#: OpenAI's released CLIP models (the backbone names of the config) -> their entry in :data:`UPSTREAMS`.
CLIP_RELEASES: dict[str, str] = {"ViT-B/32": "clip_vit_b32", "ViT-B/16": "clip_vit_b16"}


def openai_release(sha256: str) -> str | None:
    """The OpenAI CLIP release (``ViT-B/32`` / ``ViT-B/16``) whose published sha256 is ``sha256``, else None."""
    published = {UPSTREAMS[name].downloads["weights"].sha256: model for model, name in CLIP_RELEASES.items()}
    return published.get(sha256.lower())


def _upstream(dataset: str) -> Upstream:
    try:
        return UPSTREAMS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(UPSTREAMS)}") from None


def _present(path: Path, is_dir: bool) -> bool:
    if not is_dir:
        return path.is_file()
    if not path.is_dir():
        return False
    with os.scandir(path) as entries:  # an empty video directory is as good as none
        return any(not e.name.startswith(".") for e in entries)


def _absent(dataset: str, root: Path, optional: bool) -> list[Required]:
    return [r for r in _upstream(dataset).required
            if r.optional == optional and not _present(root / r.path, r.path.endswith("/"))]


def missing_files(dataset: str, root: str | os.PathLike) -> list[Required]:
    """The required entries of ``dataset`` absent under ``root`` (directories must be non-empty);
    optional entries are never missing."""
    return _absent(dataset, Path(root), optional=False)


OPTIONAL_NOTE = "(optional: read when present, not needed for training or the reported test numbers)"


def check_placed_files(dataset: str, root: str | os.PathLike) -> None:
    """Return quietly when every file ``dataset`` needs is under ``root``; otherwise raise
    :class:`MissingDataError` with one message listing each missing path (full path under
    ``root``) and where it is obtained, in the order of ``UPSTREAMS[dataset].required``. An absent
    optional file is listed too, on its own line marked optional, but is not counted missing and
    alone never raises."""
    up, root = _upstream(dataset), Path(root)
    missing = missing_files(dataset, root)
    optional = _absent(dataset, root, optional=True)
    if not missing:
        for r in optional:
            log.info("%s: optional %s not found (read when present)", up.title, root.absolute() / r.path)
        return
    lines = [f"{up.title}: {len(missing)} of {len(up.needed)} required files/directories missing "
             f"under {root.absolute()}"]
    if up.gated:
        lines.append(up.gated)
    lines.append("Put them here:")
    listed = [r for r in up.required if r in missing or r in optional]
    width = max(len(str(root.absolute() / r.path)) for r in listed)
    for r in listed:
        path = str(root.absolute() / r.path) + ("/" if r.path.endswith("/") else "")
        kind = "  (non-empty directory)" if r.path.endswith("/") else ""
        kind += f"  {OPTIONAL_NOTE}" if r.optional else ""
        lines.append(f"  {path:<{width + 1}}{kind}  <- {up.origin(r)}")
    lines.append("Or set `source:` in this dataset's config to a directory that already holds them.")
    raise MissingDataError("\n".join(lines))


@dataclass(frozen=True)
class ResolvedUpstream:
    """Where a dataset comes from after applying its config: an existing directory (``existing``,
    nothing to download), user-placed files (``upstream.gated``), or ``downloads`` (mirrors applied).
    A gated upstream's ``downloads`` (its side files) stay, with ``existing`` too."""

    dataset: str
    upstream: Upstream
    existing: Path | None
    downloads: Mapping[str, Download]


def _configured_downloads(up: Upstream, cfg: Mapping[str, Any]) -> dict[str, Download]:
    """``up.downloads`` with the config's ``mirror:`` URLs and ``sha256:`` digests applied, by download
    name; a name that is not a download of ``up`` raises ValueError."""
    mirrors, digests = dict(cfg.get("mirror") or {}), dict(cfg.get("sha256") or {})
    if (mirrors or digests) and not up.downloads:
        raise ValueError(f"{up.title} is never downloaded, so `mirror:` and `sha256:` do not apply: "
                         f"set `source:` to the directory holding the placed files")
    unknown = sorted((set(mirrors) | set(digests)) - set(up.downloads))
    if unknown:
        placed = (" (the original code's lists; the dataset's own files are never downloaded: place them, "
                  "or set `source:`)") if up.gated else ""
        raise ValueError(f"{up.title}: unknown mirror name(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(up.downloads)}{placed}")
    return {name: Download(str(mirrors.get(name, d.url)), d.extract_to, digests.get(name) or d.sha256)
            for name, d in up.downloads.items()}


def resolve_upstream(dataset: str, cfg: Mapping[str, Any] | None = None) -> ResolvedUpstream:
    """Apply a dataset's config to its default upstream.

    ``cfg['source']``: a directory that already holds the dataset in the expected layout; it is
    checked now (:class:`MissingDataError` listing what is missing) and used as is.
    ``cfg['mirror']``: ``{download name: url or path}`` replacing default URLs (a CLIP mirror keeps
    the sha256 of the official URL, since the bytes must be the same); ``cfg['sha256']``: ``{download
    name: digest}``, the digest of what a mirror serves when it is not the original file. Unknown
    names raise ValueError, and so does any name for a gated upstream without downloads (LSMDC); a gated
    upstream with downloads (ActivityNet's lists) takes mirrors for those names only.
    """
    up = _upstream(dataset)
    cfg = dict(cfg or {})
    existing = cfg.get("source")
    if existing:
        existing = Path(os.path.expanduser(str(existing)))
        if not existing.is_dir():
            raise MissingDataError(f"{up.title}: source directory {existing} does not exist "
                                   f"(set by `source:` in this dataset's config)")
        check_placed_files(dataset, existing)
        if up.gated and up.downloads:  # side files are not in the copy: still fetched
            return ResolvedUpstream(dataset, up, existing, _configured_downloads(up, cfg))
        if cfg.get("mirror"):
            log.info("%s: `source:` is set, so `mirror:` is ignored", up.title)
        return ResolvedUpstream(dataset, up, existing, {})
    return ResolvedUpstream(dataset, up, None, _configured_downloads(up, cfg))


def download_lists(dataset: str, dest: str | os.PathLike, cfg: Mapping[str, Any] | None = None, *,
                   progress: bool = True, **download_kw: Any) -> dict[str, Path]:
    """Fetch the side files of gated ``dataset`` (ActivityNet Captions: the original code's
    ``train_ids.json``, ``val_ids.json`` and ``video_path.json``) into ``dest`` and return ``{download
    name: path}``. Each is resumable and verified by its sha256; ``cfg``'s ``mirror:`` / ``sha256:``
    apply (:func:`resolve_upstream`), ``source:`` does not matter (the lists are never part of a copy).
    ``download_kw`` goes to :func:`~centerclip.data.fetch.download`.
    """
    up = _upstream(dataset)
    if not (up.gated and up.downloads):
        raise ValueError(f"{up.title} has no lists to download")
    dest = Path(dest)
    return {name: download(d.url, dest / up.downloads[name].filename, sha256=d.sha256, progress=progress,
                           **download_kw)
            for name, d in _configured_downloads(up, cfg or {}).items()}


def acquire(dataset: str, root: str | os.PathLike, cfg: Mapping[str, Any] | None = None, *,
            downloads_dir: str | os.PathLike | None = None,
            digest_manifest: str | os.PathLike | None = None, keep_archives: bool = True,
            progress: bool = True, **download_kw: Any) -> Path:
    """Make ``dataset`` complete on disk and return its root directory.

    ``source:`` set: that directory, checked. Gated: ``root``, checked (the message says what to
    place; its side files are :func:`download_lists`'s). Otherwise each download goes to
    ``downloads_dir`` (default ``root/downloads``) —
    verified by sha256 or ``digest_manifest`` — and archives are extracted under ``root``; files
    already downloaded and extracted are not fetched again. ``download_kw`` goes to
    :func:`~centerclip.data.fetch.download` (retries, timeout, ...).
    """
    resolved = resolve_upstream(dataset, cfg)
    if resolved.existing is not None:
        return resolved.existing
    root = Path(root)
    if resolved.upstream.gated:
        check_placed_files(dataset, root)
        return root
    archives = Path(downloads_dir) if downloads_dir is not None else root / "downloads"
    for name, d in resolved.downloads.items():
        # The default file name, so a mirror URL ending differently still lands where reruns look.
        default_name = resolved.upstream.downloads[name].filename
        if d.extract_to is None:
            download(d.url, root / default_name, sha256=d.sha256, digest_manifest=digest_manifest,
                     progress=progress, **download_kw)
            continue
        if (root / d.extract_to / ".extracted").is_file():
            continue
        archive = download(d.url, archives / default_name, sha256=d.sha256, digest_manifest=digest_manifest,
                           progress=progress, **download_kw)
        extract(archive, root / d.extract_to)
        if not keep_archives:
            archive.unlink()
    check_placed_files(dataset, root)
    return root
