"""Digests of downloaded files: :func:`file_sha256`, and the digest manifest ``download_digests.tsv``.

When no sha256 is known for a URL, a *digest manifest* (a TSV the user can commit, columns
``url  sha256  bytes``) records the digest of the first download; later downloads of the same
URL must match it, so a file silently changed at the source is caught
(:func:`centerclip.data.fetch.download` reads and records it).

:class:`DownloadError` is the one error of the download steps (this manifest, fetching in
:mod:`centerclip.data.fetch`, extracting in :mod:`centerclip.data.archives`); it lives here, in the module
the others build on, so none of them imports another only for it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator

MANIFEST_HEADER = ("url", "sha256", "bytes")


class DownloadError(RuntimeError):
    """A download or extraction that cannot succeed as asked; the message says which URL/file and why."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None,
                 expected: str | None = None, actual: str | None = None) -> None:
        super().__init__(message)
        self.url, self.status, self.expected, self.actual = url, status, expected, actual



def is_sha256(s: str) -> bool:
    """Whether ``s`` is a sha256 in hex (64 hex digits, either case)."""
    return len(s) == 64 and all(c in "0123456789abcdefABCDEF" for c in s)


def stream_sha256(f: BinaryIO, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of what is left to read of the binary file object ``f``, read in chunks."""
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(chunk_size), b""):
        h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return stream_sha256(f, chunk_size)


def read_digest_manifest(path: str | os.PathLike) -> dict[str, tuple[str, int | None]]:
    """``{url: (sha256, bytes)}`` from a digest manifest TSV; ``{}`` when the file does not exist.

    Lines starting with ``#`` and the header line are ignored; a malformed line raises
    :class:`DownloadError` naming file and line.
    """
    path = Path(path)
    if not path.exists():
        return {}
    entries: dict[str, tuple[str, int | None]] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if tuple(c.strip() for c in cols) == MANIFEST_HEADER:
            continue
        if len(cols) not in (2, 3) or not is_sha256(cols[1].strip()):
            raise DownloadError(f"{path}:{line_no}: expected 'url<TAB>sha256<TAB>bytes', found {line!r}")
        size = cols[2].strip() if len(cols) == 3 else ""
        if size and not size.isdigit():
            raise DownloadError(f"{path}:{line_no}: bytes must be an integer, found {size!r}")
        entries[cols[0].strip()] = (cols[1].strip().lower(), int(size) if size else None)
    return entries


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Parallel download jobs may record into the same manifest: serialise read-modify-write.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record_digest(path: str | os.PathLike, url: str, sha256: str, nbytes: int) -> None:
    """Add (or replace) the line of ``url`` in the digest manifest ``path``, atomically."""
    path = Path(path)
    with _locked(path):
        entries = read_digest_manifest(path)
        entries[url] = (sha256.lower(), nbytes)
        lines = ["\t".join(MANIFEST_HEADER)]
        lines += [f"{u}\t{d}\t{'' if n is None else n}" for u, (d, n) in sorted(entries.items())]
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            tmp.write_text("\n".join(lines) + "\n")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
