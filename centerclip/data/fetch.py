"""Resumable, verified, atomic downloads (standard library only).

:func:`download` fetches an ``http(s)://`` URL, a ``file://`` URL or a plain local path (a mirror
on a shared disk) to ``dst``. Partial data lives in ``dst + ".part"`` and is resumed with an HTTP
``Range`` request; the final name appears only after the sha256 check passed, against a given digest
or the digest manifest (:mod:`centerclip.data.digests`).

Every failure a user can cause ends in :class:`~centerclip.data.digests.DownloadError` with one message
naming the URL or file and what went wrong, never in a traceback from inside urllib.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from centerclip.data.digests import DownloadError, file_sha256, is_sha256, read_digest_manifest, record_digest

log = logging.getLogger(__name__)

USER_AGENT = "centerclip-download/1 (+urllib)"
# Server answers worth retrying: the request was fine, the server was not (yet).
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


class _Incomplete(Exception):
    """The stream ended before Content-Length/Content-Range said it would (connection dropped)."""


def _local_path(url: str) -> Path | None:
    """The local file behind ``url`` (``file://`` or a plain path), or None for http(s)."""
    parts = urllib.parse.urlsplit(str(url))
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DownloadError(f"{url}: file:// URLs with a host are not supported", url=url)
        return Path(urllib.request.url2pathname(parts.path))
    if parts.scheme == "":
        return Path(url)
    raise DownloadError(f"{url}: unsupported URL scheme {parts.scheme!r} (http, https, file or a local path)",
                        url=url)


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class _Progress:
    """tqdm on a terminal; otherwise one log line per ~10% (job logs must not fill with bars)."""

    def __init__(self, name: str, total: int | None, initial: int, enabled: bool) -> None:
        self.name, self.total, self.done = name, total, initial
        self.bar = None
        self.next_mark = 0.1
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=name, unit="B", unit_scale=True,
                            unit_divisor=1024, leave=False)
        self.log_lines = enabled and self.bar is None
        if self.log_lines and total:
            self.next_mark = (int(10 * initial / total) + 1) / 10
        elif self.log_lines:
            self.next_mark = 1 << 28  # unknown total: a line every 256 MiB

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.log_lines and self.total:
            if self.done / self.total >= self.next_mark:
                log.info("%s: %3.0f%% (%s of %s)", self.name, 100 * self.done / self.total,
                         _human(self.done), _human(self.total))
                self.next_mark = (int(10 * self.done / self.total) + 1) / 10
        elif self.log_lines and self.done >= self.next_mark:
            log.info("%s: %s", self.name, _human(self.done))
            self.next_mark += 1 << 28

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` from ``bytes START-END/TOTAL`` or ``bytes */TOTAL`` (None where absent)."""
    if not value or not value.strip().startswith("bytes"):
        return None, None
    spec = value.strip()[5:].strip()
    rng, _, total = spec.partition("/")
    start = None
    if rng != "*":
        with contextlib.suppress(ValueError):
            start = int(rng.split("-")[0])
    return start, (int(total) if total.strip().isdigit() else None)


def _hash_prefix(path: Path, chunk_size: int) -> "hashlib._Hash":
    # Resuming: the digest must cover the bytes already on disk too.
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h


def _stream(src: BinaryIO, out: BinaryIO, h: "hashlib._Hash", chunk_size: int, bar: _Progress) -> int:
    n = 0
    while True:  # bounded by the response: read() returns b"" at EOF or on a dropped connection
        chunk = src.read(chunk_size)
        if not chunk:
            return n
        out.write(chunk)
        h.update(chunk)
        n += len(chunk)
        bar.update(len(chunk))


def _copy_local(src: Path, url: str, part: Path, chunk_size: int, progress: bool) -> tuple[str, int]:
    if not src.is_file():
        raise DownloadError(f"download failed: {url}: no such file {src}", url=url)
    total = src.stat().st_size
    bar = _Progress(part.name[:-5], total, 0, progress)
    h = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(part, "wb") as fout:
            n = _stream(fin, fout, h, chunk_size, bar)
            fout.flush()
            os.fsync(fout.fileno())
    finally:
        bar.close()
    return h.hexdigest(), n


def _range_request(url: str, offset: int) -> urllib.request.Request:
    """GET ``url`` from byte ``offset`` on (the whole file for 0), uncompressed."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.Request(url, headers=headers)


def _receive(resp, url: str, part: Path, offset: int, chunk_size: int, progress: bool) -> tuple[str, int]:
    """Write a response into ``part``: appended after its ``offset`` bytes for 206 (the range asked for),
    from the start for 200 (a server that ignores Range). Returns the sha256 and size of the whole part;
    raises _Incomplete for a short transfer and _Restart when appending would corrupt the file."""
    length = resp.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if resp.status == 206:
        start, total = _parse_content_range(resp.headers.get("Content-Range"))
        if start != offset:
            # Not the range we asked for: appending would corrupt the file.
            raise _Restart(f"server sent range starting at {start}, asked for {offset}")
        if total is None and length is not None:
            total = offset + length
        h, mode = (_hash_prefix(part, chunk_size) if offset else hashlib.sha256()), "ab"
    else:
        if offset:
            log.info("%s: server ignored the Range request; downloading from the start", url)
        offset, total, mode, h = 0, length, "wb", hashlib.sha256()
    bar = _Progress(part.name[:-5], total, offset, progress)
    try:
        with open(part, mode) as out:
            got = _stream(resp, out, h, chunk_size, bar)
            out.flush()
            os.fsync(out.fileno())
    finally:
        bar.close()
    size = offset + got
    if total is not None and size < total:
        raise _Incomplete(f"connection closed after {size} of {total} bytes")
    if total is not None and size > total:
        raise _Restart(f"received {size} bytes, server announced {total}")
    return h.hexdigest(), size


def _complete_after_416(part: Path, offset: int, content_range: str | None, expected: str | None,
                        chunk_size: int) -> tuple[str, int] | None:
    """HTTP 416 for a range from ``offset``: ``(sha256, size)`` when the part already is the whole file
    (the size the server names, or the expected digest), else None (it changed: start over)."""
    _, total = _parse_content_range(content_range)
    if total == offset or (total is None and expected):
        digest = file_sha256(part, chunk_size)
        if total == offset or digest == expected:
            return digest, offset
    return None


def _fetch_http(url: str, part: Path, *, expected: str | None, chunk_size: int, retries: int,
                timeout: float, backoff: float, progress: bool) -> tuple[str, int]:
    """Fill ``part`` with the whole remote file (resuming what is there); return ``(sha256, bytes)``."""
    failures, restarts = 0, 0
    last_error = ""
    while True:  # bounded: each pass consumes a failure (<= retries) or a restart (<= 2) or returns
        offset = part.stat().st_size if part.exists() else 0
        try:
            with urllib.request.urlopen(_range_request(url, offset), timeout=timeout) as resp:
                return _receive(resp, url, part, offset, chunk_size, progress)
        except urllib.error.HTTPError as err:
            status, reason = err.code, err.reason
            content_range = err.headers.get("Content-Range") if err.headers else None
            err.close()
            if status == 416 and offset:
                done = _complete_after_416(part, offset, content_range, expected, chunk_size)
                if done is not None:
                    return done
                if restarts >= 2:
                    raise DownloadError(f"download failed: {url}: HTTP 416 for a fresh download", url=url,
                                        status=416) from None
                log.info("%s: partial file (%d bytes) does not fit the remote one; starting over", url, offset)
                part.unlink(missing_ok=True)
                restarts += 1
                continue
            if status not in _TRANSIENT_HTTP:
                raise DownloadError(f"download failed: {url}: HTTP {status} {reason}", url=url,
                                    status=status) from None
            last_error = f"HTTP {status} {reason}"
        except _Restart as exc:
            if restarts >= 2:
                raise DownloadError(f"download failed: {url}: {exc}", url=url) from None
            log.info("%s: %s; starting over", url, exc)
            part.unlink(missing_ok=True)
            restarts += 1
            continue
        except (urllib.error.URLError, OSError, http.client.HTTPException, _Incomplete) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            last_error = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
        failures += 1
        if failures > retries:
            kept = f"; {part.stat().st_size} bytes kept in {part}, rerun to resume" if part.exists() else ""
            plural = "s" if failures > 1 else ""
            raise DownloadError(f"download failed after {failures} attempt{plural}: {url}: {last_error}{kept}",
                                url=url) from None
        wait = backoff * 2 ** (failures - 1)
        log.warning("%s: %s; retry %d/%d in %.1f s (resuming)", url, last_error, failures, retries, wait)
        time.sleep(wait)


class _Restart(Exception):
    """The partial data cannot be continued: delete it and start from byte 0."""


def download(url: str, dst: str | os.PathLike, *, sha256: str | None = None,
             digest_manifest: str | os.PathLike | None = None, chunk_size: int = 1 << 20,
             retries: int = 3, timeout: float = 60, progress: bool = True, backoff: float = 1.0) -> Path:
    """Download ``url`` to ``dst`` and return ``dst``; the file appears only once verified.

    ``url``: ``http(s)://``, ``file://`` or a plain local path (copied; used for mirrors on a
    shared disk). Partial HTTP data is kept in ``dst.part`` and resumed with ``Range: bytes=N-``
    (206 appends; 200 means the server ignored the range, so it restarts from 0; 416 means the part
    is complete or larger than the remote file: verified or restarted). Connection errors,
    timeouts, dropped transfers and transient HTTP statuses (429, 5xx) are retried ``retries``
    times with exponential ``backoff`` seconds, resuming each time.

    Verification: ``sha256`` when given; otherwise, with ``digest_manifest`` (TSV ``url sha256
    bytes``), against the digest recorded for ``url`` — or, on the first download, the digest is
    recorded there. A mismatch deletes the download and raises :class:`DownloadError` carrying
    ``url``, ``expected`` and ``actual``. An existing ``dst`` is re-verified (not re-fetched) and
    replaced only if it fails.

    Progress: tqdm when stderr is a terminal, else a log line every ~10%.
    """
    dst = Path(dst)
    part = dst.with_name(dst.name + ".part")
    recorded = read_digest_manifest(digest_manifest) if digest_manifest and not sha256 else {}
    expected = (sha256 or recorded.get(url, (None, None))[0] or None)
    expected = expected.lower() if expected else None
    if expected is not None and not is_sha256(expected):
        raise DownloadError(f"{url}: expected sha256 {expected!r} is not 64 hex digits", url=url)

    if dst.exists():
        digest = file_sha256(dst, chunk_size) if (expected or digest_manifest) else None
        if expected is None or digest == expected:
            if digest_manifest and not sha256 and url not in recorded:
                record_digest(digest_manifest, url, digest, dst.stat().st_size)
            log.info("%s: already present%s", dst, " and verified" if expected else "")
            return dst
        log.warning("%s exists but its sha256 is %s, expected %s: downloading again", dst, digest, expected)

    dst.parent.mkdir(parents=True, exist_ok=True)
    local = _local_path(url)
    if local is not None:
        actual, nbytes = _copy_local(local, url, part, chunk_size, progress)
    else:
        actual, nbytes = _fetch_http(url, part, expected=expected, chunk_size=chunk_size, retries=retries,
                                     timeout=timeout, backoff=backoff, progress=progress)

    if expected is not None and actual != expected:
        part.unlink(missing_ok=True)
        where = (f"sha256 recorded in {digest_manifest} (if the file legitimately changed at the source, "
                 f"delete its line there)" if not sha256 else "sha256")
        raise DownloadError(f"corrupt download deleted: {url}: expected {where} {expected}, got {actual} "
                            f"({nbytes} bytes)", url=url, expected=expected, actual=actual)
    os.replace(part, dst)
    if digest_manifest and not sha256 and url not in recorded:
        record_digest(digest_manifest, url, actual, nbytes)
        log.info("%s: recorded sha256 %s in %s", url, actual, digest_manifest)
    log.info("%s: %s, sha256 %s%s", dst, _human(nbytes), actual, " (verified)" if expected else "")
    return dst
