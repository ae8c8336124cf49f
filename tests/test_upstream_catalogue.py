"""The placement check, its message and the parsers agree on one layout per dataset.

Files put exactly where :func:`check_placed_files` says make :func:`build_manifest` succeed; every
required path is one the parser reads (removing it breaks the manifest) and every file the parser
reads is required, except ActivityNet's split lists of the original code, which are downloaded (over
a local HTTP server here, verified by sha256), never placed; LSMDC's val file is optional everywhere.
The datasets are tiny synthetic twins.
"""

import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from upstream import Upstream

from centerclip.data.activitynet import ACTIVITYNET_LISTS_DIR
from centerclip.data.digests import DownloadError
from centerclip.data.layouts import FORMATS, LAYOUTS, AnnotationError
from centerclip.data.parsers import build_manifest
from centerclip.data.synthetic.twins import make_activitynet_twin, make_lsmdc_twin, make_msrvtt_twin, make_msvd_twin
from centerclip.data.upstreams import (UPSTREAMS, MissingDataError, check_placed_files, download_lists, missing_files,
                                       resolve_upstream)

TWINS = {
    "msrvtt": lambda root: make_msrvtt_twin(root, n_train=2, n_test=1, seed=1, captions_per_video=2),
    "msvd": lambda root: make_msvd_twin(root, n_train=1, n_val=1, n_test=1, seed=1, captions_per_video=2),
    "lsmdc": lambda root: make_lsmdc_twin(root, n_train=2, n_val=1, n_test=2, seed=1, clips_per_movie=1),
    "activitynet": lambda root: make_activitynet_twin(root, n_train=2, n_test=2, seed=1, events=(1, 2),
                                                      seconds=(4.0, 6.0), size=(96, 64), fps=3, mkv_share=0.5),
}
# The manifest variants of each format: a required file must be read by at least one of them.
VARIANTS = {"msrvtt": [{"train_split": "7k"}, {"train_split": "9k"}]}
# One listed path: two spaces, the absolute path, then at least two spaces before its notes and origin.
LISTED = re.compile(r"^  (?P<path>/\S.*?) {2,}(?P<rest>.*<- .+)$")


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """format -> (root of a complete twin, counts it returned), each made once, on first use."""
    made = {}

    def get(fmt):
        if fmt not in made:
            root = tmp_path_factory.mktemp(f"twin_{fmt}")
            made[fmt] = root, TWINS[fmt](root)
        return made[fmt]

    return get


def listed(message: str) -> list[tuple[str, bool]]:
    """(absolute path, optional?) of every path the message tells the user to put files at."""
    out = []
    for line in message.splitlines():
        m = LISTED.match(line)
        if m:
            out.append((m["path"], "(optional:" in m["rest"]))
    return out


def place_from_twin(twin: Path, path: str) -> None:
    """Put the twin's file (or directory, for a path ending in /) of the same name at ``path``, as a
    user does with the files they obtained: by name, wherever the twin keeps them."""
    dest = Path(path)
    is_dir = path.endswith("/")
    found = [p for p in twin.rglob(dest.name) if p.is_dir() == is_dir]
    assert len(found) == 1, f"{dest.name}: {found}"
    if is_dir:
        shutil.copytree(found[0], dest, dirs_exist_ok=True)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(found[0], dest)


def rebased(frame, old: Path, new: Path):
    """``frame`` with its raw paths moved from root ``old`` to root ``new``."""
    out = frame.copy()
    out["raw_path"] = [str(new / Path(s).relative_to(old)) for s in out.raw_path]
    return out


def message_for(fmt: str, root: Path) -> str:
    with pytest.raises(MissingDataError) as exc:
        check_placed_files(fmt, root)
    return str(exc.value)


# ---------------------------------------------------------------------------------------------
# gated datasets: placing what the message lists is enough

@pytest.mark.parametrize("fmt", ["lsmdc", "activitynet"])
def test_files_placed_where_the_message_says_build_the_manifest(fmt, twins, tmp_path):
    twin, counts = twins(fmt)
    root = tmp_path / fmt
    root.mkdir()
    msg = message_for(fmt, root)
    paths = listed(msg)
    assert len(paths) == len(UPSTREAMS[fmt].required)  # every entry, the optional one too
    assert all(p.startswith(str(root.absolute()) + "/") for p, _ in paths)
    assert [opt for _, opt in paths] == [r.optional for r in UPSTREAMS[fmt].required]
    n = len(UPSTREAMS[fmt].needed)
    assert f"{n} of {n} required" in msg

    assert "train_ids.json" not in msg  # ActivityNet's lists are downloaded, never placed

    for path, _ in paths:
        place_from_twin(twin, path)
    check_placed_files(fmt, root)  # silent
    assert missing_files(fmt, root) == []

    if UPSTREAMS[fmt].downloads:  # ActivityNet's lists, from a mirror, into the library's default folder
        with Upstream(tmp_path / "upstream") as up:
            download_lists(fmt, root / ACTIVITYNET_LISTS_DIR, up.activitynet_lists(twin / ACTIVITYNET_LISTS_DIR),
                           progress=False)
    m = build_manifest(fmt, root)
    splits = ("train", "val", "test") if fmt == "lsmdc" else ("train", "test")
    assert m.groupby("split").size().to_dict() == {s: counts[s] for s in splits}
    assert all(Path(s).is_file() and Path(s).is_relative_to(root) for s in m.raw_path)
    assert m.equals(rebased(build_manifest(fmt, twin), twin, root))


def test_lsmdc_without_val_file_passes_and_has_no_val_rows(twins, tmp_path):
    twin, counts = twins("lsmdc")
    root = tmp_path / "lsmdc"
    root.mkdir()
    paths = listed(message_for("lsmdc", root))
    optional = [p for p, opt in paths if opt]
    assert [Path(p).name for p in optional] == ["LSMDC16_annos_val.csv"]
    for path, opt in paths:
        if path.endswith("/") or opt:
            continue
        place_from_twin(twin, path)
    # only the videos are missing: one of three; the val file is listed, marked optional, not counted
    msg = message_for("lsmdc", root)
    assert "1 of 3 required" in msg
    assert [(p, opt) for p, opt in listed(msg)] == [(optional[0], True), (str(root.absolute() / "videos") + "/", False)]
    assert re.search(r"LSMDC16_annos_val.csv +\(optional: ", msg)

    place_from_twin(twin, str(root.absolute() / "videos") + "/")
    check_placed_files("lsmdc", root)  # the val file is missing, and that is fine
    assert missing_files("lsmdc", root) == []
    m = build_manifest("lsmdc", root)
    assert m.groupby("split").size().to_dict() == {"train": counts["train"], "test": counts["test"]}


def test_activitynet_captions_zip_layout_is_explained(twins, tmp_path):
    """captions.zip unpacks to captions/: the check and the parser say to move its files to annotations/."""
    twin, _ = twins("activitynet")
    root = tmp_path / "anet"
    shutil.copytree(twin / "annotations", root / "captions")
    shutil.copytree(twin / "videos", root / "videos")
    msg = message_for("activitynet", root)
    for name in ("train.json", "val_1.json"):
        assert re.search(rf"{re.escape(str(root.absolute() / 'annotations' / name))} +<- captions.zip .*"
                         rf"unpacks to captions/: move its captions/{name} here", msg)
    with pytest.raises(AnnotationError, match=r"captions/train.json exists: move it here"):
        build_manifest("activitynet", root)


# ---------------------------------------------------------------------------------------------
# every format: the required paths are the parser's layout

def test_required_entries_are_the_parser_layout():
    for fmt in FORMATS:
        layout = LAYOUTS[fmt]
        expected = [(f"{layout.annotation_dir}/{name}", role in layout.optional) for role, name in layout.files.items()]
        expected.append((f"{layout.video_dir}/", False))
        assert [(r.path, r.optional) for r in UPSTREAMS[fmt].required] == expected, fmt
    assert [r.path for r in UPSTREAMS["lsmdc"].required if r.optional] == ["annotations/LSMDC16_annos_val.csv"]
    assert not any(r.optional for fmt in ("msrvtt", "msvd", "activitynet") for r in UPSTREAMS[fmt].required)


@pytest.mark.parametrize("fmt", FORMATS)
def test_parser_reads_every_required_path_and_nothing_else(fmt, twins, tmp_path):
    twin, _ = twins(fmt)
    src = UPSTREAMS[fmt]
    variants = VARIANTS.get(fmt, [{}])
    if src.gated and src.downloads:  # downloaded lists are not placed files: read from where they were fetched
        variants = [{**v, "lists_dir": twin / ACTIVITYNET_LISTS_DIR} for v in variants]

    # Sufficient: a root holding only the listed paths builds every variant of the manifest.
    root = tmp_path / "only_listed"
    for r in src.required:
        place_from_twin(twin, str(root / r.path) + ("/" if r.path.endswith("/") else ""))
    assert missing_files(fmt, root) == []
    full = {i: build_manifest(fmt, root, **v) for i, v in enumerate(variants)}

    for r in src.required:
        if r.path.endswith("/"):  # the videos: every raw path of the manifest lies in that directory
            video_dir = (root / r.path).resolve()
            assert all(Path(s).resolve().is_relative_to(video_dir) and Path(s).is_file()
                       for m in full.values() for s in m.raw_path), r.path
            continue
        path = root / r.path
        hidden = path.with_name(path.name + ".away")
        path.rename(hidden)
        try:
            outcomes = []
            for v in variants:
                try:
                    outcomes.append(build_manifest(fmt, root, **v))
                except AnnotationError as exc:
                    assert str(path) in str(exc), (r.path, str(exc))
                    outcomes.append(None)
        finally:
            hidden.rename(path)
        if r.optional:  # read when present, fine when absent
            assert all(o is not None for o in outcomes), r.path
            assert all(len(o) < len(full[i]) for i, o in enumerate(outcomes)), r.path
        else:  # necessary: some variant of the parser reads it
            assert any(o is None for o in outcomes), f"{fmt}: {r.path} is required but never read"


# ---------------------------------------------------------------------------------------------
# ActivityNet's split lists of the original code: downloaded, verified, mirrors for them only

ANET_LISTS = {"train_ids": "train_ids.json", "val_ids": "val_ids.json", "video_path": "video_path.json"}


def test_activitynet_lists_are_the_original_codes_files():
    downloads = UPSTREAMS["activitynet"].downloads
    base = "https://raw.githubusercontent.com/mzhaoshuai/CenterCLIP/886fe7342956f361c9c7b93f82d05c7ec5ed677b/"
    assert {n: d.url for n, d in downloads.items()} == {
        n: f"{base}misc/splits/activitynet/{f}" for n, f in ANET_LISTS.items()}
    assert {n: d.sha256 for n, d in downloads.items()} == {
        "train_ids": "7ef2f714c2ab399adbb3785a42f4938e37b9674321860ba665a0ca0dfee08d2d",
        "val_ids": "e809ce219a8cdc21a97a724500f373dcc066967497a554ded654bf71d9e8e59b",
        "video_path": "4803ce0d715f1998720c29364773741dd1e90505fc0fa1b3c9d5af93af61ad63"}
    assert all(d.extract_to is None for d in downloads.values())
    assert UPSTREAMS["activitynet"].gated and not UPSTREAMS["lsmdc"].downloads


def test_activitynet_lists_downloaded_over_http_and_verified_by_sha256(twins, tmp_path):
    twin, counts = twins("activitynet")
    with Upstream(tmp_path / "upstream") as up:
        cfg = up.activitynet_lists(twin / ACTIVITYNET_LISTS_DIR)
        default = UPSTREAMS["activitynet"].downloads
        assert {n: urlsplit(u).path for n, u in cfg["mirror"].items()} == {
            n: urlsplit(d.url).path for n, d in default.items()}  # served at the original's URL paths
        # checked against the published digests: the twin's lists are other bytes, so nothing is kept
        with pytest.raises(DownloadError, match=r"expected sha256 7ef2f714\w+, got"):
            download_lists("activitynet", tmp_path / "published", {"mirror": cfg["mirror"]}, progress=False)
        assert not any((tmp_path / "published").iterdir())
        with pytest.raises(DownloadError, match=r"val_ids.json: expected sha256 0{64}"):
            download_lists("activitynet", tmp_path / "wrong", {**cfg, "sha256": {**cfg["sha256"], "val_ids": "0" * 64}},
                           progress=False)
        assert sorted(p.name for p in (tmp_path / "wrong").iterdir()) == ["train_ids.json"]  # verified before it

        paths = download_lists("activitynet", tmp_path / "lists", cfg, progress=False)
        assert {n: p.name for n, p in paths.items()} == ANET_LISTS
        assert all(p.read_bytes() == (twin / ACTIVITYNET_LISTS_DIR / p.name).read_bytes() for p in paths.values())
        served = len(up.server.state.paths)
        download_lists("activitynet", tmp_path / "lists", cfg, progress=False)  # present and verified: not fetched
        assert len(up.server.state.paths) == served
    m = build_manifest("activitynet", twin, lists_dir=tmp_path / "lists")
    assert m.groupby("split").size().to_dict() == {"train": counts["train"], "test": counts["test"]}


def test_activitynet_mirrors_are_for_its_lists_only(twins, tmp_path):
    digest = "ab" * 32
    res = resolve_upstream("activitynet", {"mirror": {"train_ids": "/m/train_ids.json"},
                                           "sha256": {"train_ids": digest}})
    assert res.existing is None and res.downloads["train_ids"].url == "/m/train_ids.json"
    assert res.downloads["train_ids"].sha256 == digest
    assert res.downloads["val_ids"] == UPSTREAMS["activitynet"].downloads["val_ids"]  # the others unchanged
    for cfg in ({"mirror": {"videos": "http://x"}}, {"mirror": {"annotations": "http://x", "val_ids": "/v"}},
                {"sha256": {"val_1": digest}}):
        with pytest.raises(ValueError, match=r"ActivityNet Captions: unknown mirror name\(s\) \w+; valid: train_ids, "
                                             r"val_ids, video_path \(the original code's lists; .* never downloaded"):
            resolve_upstream("activitynet", cfg)
        with pytest.raises(ValueError, match="unknown mirror name"):
            download_lists("activitynet", tmp_path, cfg)
    with pytest.raises(ValueError, match=r"LSMDC is never downloaded, so `mirror:` and `sha256:` do not apply"):
        resolve_upstream("lsmdc", {"mirror": {"train_ids": "http://x"}})
    with pytest.raises(ValueError, match="MSR-VTT has no lists to download"):
        download_lists("msrvtt", tmp_path)
    # `source:` (a copy that may be read-only): its placed files are checked there, the lists still come
    # from their (mirrored) URLs, into a folder the caller names
    twin, _ = twins("activitynet")
    res = resolve_upstream("activitynet", {"source": str(twin), "mirror": {"video_path": "/m/video_path.json"}})
    assert res.existing == twin and res.downloads["video_path"].url == "/m/video_path.json"
