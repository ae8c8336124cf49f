"""Safe archive extraction (standard library only): :func:`extract` unpacks zip / tar / tar.gz into a
temporary directory, renames it into place and refuses members that would land outside it.

Every failure a user can cause ends in :class:`~centerclip.data.digests.DownloadError` naming the archive
and what went wrong.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from centerclip.data.digests import DownloadError

log = logging.getLogger(__name__)


def _check_member(name: str, archive: Path) -> PurePosixPath:
    """The member's relative path; DownloadError for absolute paths or ``..`` (path traversal)."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise DownloadError(f"{archive}: refusing unsafe member {name!r} (absolute path or '..'); "
                            f"the archive is corrupt or malicious")
    return p


def _members(archive: Path) -> tuple[str, list[PurePosixPath]]:
    """Archive kind and its member paths, every one checked before anything is written."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            return "zip", [_check_member(n, archive) for n in zf.namelist()]
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            paths = []
            for m in tf.getmembers():
                paths.append(_check_member(m.name, archive))
                if m.issym() or m.islnk():
                    # A symlink's target is relative to its own directory, a hard link's to the root.
                    base = posixpath.dirname(m.name) if m.issym() else ""
                    target = posixpath.normpath(posixpath.join(base, m.linkname))
                    if posixpath.isabs(m.linkname) or target == ".." or target.startswith("../"):
                        raise DownloadError(f"{archive}: refusing link {m.name!r} -> {m.linkname!r} "
                                            f"pointing outside the archive")
                elif not (m.isfile() or m.isdir()):
                    raise DownloadError(f"{archive}: refusing special member {m.name!r} (device or fifo)")
            return "tar", paths
    raise DownloadError(f"{archive}: not a zip or tar archive")


def _stale_partials(dest: Path) -> Iterator[Path]:
    """Hidden partial directories of ``dest`` left by extractions whose process is gone."""
    for p in dest.parent.glob(f".{dest.name}.partial-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            yield p
        except PermissionError:  # alive, someone else's
            continue


# What a truncated or corrupt archive raises while it is read or unpacked.
_ARCHIVE_ERRORS = (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError)


def _check_extractable(archive: Path, dest: Path, marker: str) -> None:
    """DownloadError unless ``archive`` exists and ``dest`` is free (an unmarked ``dest`` is not ours)."""
    if dest.exists():
        raise DownloadError(f"{dest} exists but has no {marker} marker, so it is not a finished extraction "
                            f"of {archive.name}: delete it, or point the dataset's `source:` at it")
    if not archive.is_file():
        raise DownloadError(f"{archive}: archive not found")


def _read_members(archive: Path) -> tuple[str, list[PurePosixPath]]:
    """:func:`_members`, with an unreadable archive reported as a DownloadError."""
    try:
        return _members(archive)
    except _ARCHIVE_ERRORS as exc:
        raise DownloadError(f"{archive}: cannot read the archive ({type(exc).__name__}: {exc}); "
                            f"it is probably truncated or corrupt") from None


def _strip_top(paths: list[PurePosixPath], name: str) -> bool:
    """Whether all members sit in one top-level directory called ``name`` (unpacked one level up)."""
    # Zips made by macOS's Finder add a __MACOSX/ tree of resource forks beside the real top folder: not
    # content, so it does not count as a second top-level entry (it is left behind with the temp folder).
    tops = {p.parts[0] for p in paths if p.parts and p.parts[0] != "__MACOSX"}
    return len(tops) == 1 and next(iter(tops)) == name and any(len(p.parts) > 1 for p in paths)


def _fresh_partial(dest: Path) -> Path:
    """An empty hidden ``.<dest>.partial-<pid>`` beside ``dest``, after removing dead processes' leftovers."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_partials(dest):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)  # an earlier failed try of this same process
    tmp.mkdir()
    return tmp


def _unpack(kind: str, archive: Path, tmp: Path) -> None:
    """Write every member of ``archive`` (a ``kind`` "zip" or "tar", members already checked) into ``tmp``."""
    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        return
    with tarfile.open(archive) as tf:
        # Our own checks ran first (_members: no traversal, no links out, no devices); the "data" filter
        # additionally drops setuid bits etc. where Python has it (3.11.4+ and 3.12; Debian 12's
        # Python 3.11.2 has no extraction filters)
        if hasattr(tarfile, "data_filter"):
            tf.extractall(tmp, filter="data")
        else:
            tf.extractall(tmp)


def extract(archive: str | os.PathLike, dest_dir: str | os.PathLike, *, marker: str = ".extracted") -> Path:
    """Unpack a zip / tar / tar.gz / tar.bz2 / tar.xz ``archive`` so its contents are in ``dest_dir``.

    Atomic: members go to a hidden sibling ``.<dest>.partial-<pid>``, the ``marker`` file is written
    there last, and the directory is renamed to ``dest_dir``; so ``dest_dir`` with its marker means
    done, and a killed extraction leaves only the hidden directory (removed by the next run).
    When the archive holds a single top-level directory named like ``dest_dir`` (``msrvtt_data.zip``
    -> ``msrvtt_data/...``), its contents go straight into ``dest_dir`` rather than one level deeper.

    An existing ``dest_dir`` with the marker is kept as is; one without it raises (it was not made
    here, and deleting someone's data is not ours to do). Members with absolute paths, ``..``,
    links pointing outside, or device files raise :class:`DownloadError` before anything is written.
    """
    archive, dest = Path(archive), Path(dest_dir)
    if (dest / marker).is_file():
        log.info("%s: already extracted", dest)
        return dest
    _check_extractable(archive, dest, marker)
    kind, paths = _read_members(archive)
    strip = _strip_top(paths, dest.name)
    tmp = _fresh_partial(dest)
    try:
        _unpack(kind, archive, tmp)
        root = tmp / dest.name if strip else tmp
        (root / marker).write_text(f"{archive.name}\n")
        os.replace(root, dest)
    except DownloadError:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise DownloadError(f"{archive}: extraction failed ({type(exc).__name__}: {exc}); "
                            f"the archive is probably truncated or corrupt") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("%s: extracted %d members into %s", archive.name, len(paths), dest)
    return dest
