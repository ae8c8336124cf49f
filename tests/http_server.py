"""A local HTTP server on 127.0.0.1 for download tests: in-memory bytes, files on disk, or a directory.

Standard library only (``http.server.ThreadingHTTPServer``). What it serves is a
:class:`ServerState`:

- ``files``: URL path -> ``bytes`` (held in memory) or a ``Path`` (streamed from disk in chunks,
  never read whole: mirrors of multi-hundred-MB archives are fine);
- ``directory``: a folder whose files are served under ``/<relative path>`` (looked up per
  request, so files written later are served too; hidden names and ``..`` are refused).

Every response carries ``Content-Length``; with ``honour_range`` (the default) also
``Accept-Ranges: bytes``, and ``Range: bytes=N-`` / ``bytes=N-M`` / ``bytes=-K`` get a 206 with
``Content-Range`` (a start past the end: 416). Failure injection for resumption tests:
``honour_range=False`` (always 200, the whole file), ``drop_after`` bytes sent before the
connection is cut on the first ``drops`` requests, optionally hanging ``stall`` seconds first.
The ``Range`` header of every request is recorded in ``ranges`` (``None`` when absent), so
resumption is asserted, not assumed.

Use as a context manager, or ``start()`` / ``stop()`` around a pytest fixture::

    with serve_directory(tmp_path) as srv:          # port 0: a free port on 127.0.0.1
        download(srv.url("/a/b.zip"), dst)

Command line, for manual runs: ``python tests/http_server.py DIR [--port N]`` serves DIR and
prints its base URL (first line of stdout) until interrupted.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

CHUNK = 1 << 20  # bytes per write when streaming a file from disk

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


@dataclass
class ServerState:
    """What the server serves and how it misbehaves; shared by all its request threads."""

    files: dict[str, bytes | Path] = field(default_factory=dict)  # URL path (unquoted) -> content
    directory: Path | None = None  # fallback: files under this folder, by relative path
    honour_range: bool = True
    drop_after: int | None = None  # bytes sent before the connection is cut ...
    drops: int = 0                 # ... on this many first requests
    stall: float = 0.0             # seconds to hang (after drop_after bytes) on dropped requests
    ranges: list[str | None] = field(default_factory=list)  # the Range header of every request
    paths: list[str] = field(default_factory=list)           # the URL path of every request
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, url_path: str) -> bytes | Path | None:
        """The content served at ``url_path`` (query string ignored), or None (404)."""
        path = unquote(urlsplit(url_path).path)
        content = self.files.get(path)
        if content is not None:
            return content
        if self.directory is None:
            return None
        rel = PurePosixPath(path.lstrip("/"))
        if not rel.parts or any(p in ("..", ".") or p.startswith(".") for p in rel.parts):
            return None  # traversal, or hidden (temporary / partial) files
        candidate = Path(self.directory, *rel.parts)
        return candidate if candidate.is_file() else None


def directory_files(root: str | os.PathLike) -> dict[str, Path]:
    """``{"/rel/path": file}`` for every non-hidden file under ``root`` (a snapshot, for ``files``)."""
    root = Path(root)
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not any(p.startswith(".") for p in rel.parts):
            out["/" + rel.as_posix()] = path
    return out


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(start, end)`` inclusive for a satisfiable single range, ``"unsatisfiable"``, or None
    (no header or one we do not understand: answer 200 with the whole body, as RFC 9110 allows)."""
    if not header:
        return None
    m = _RANGE.match(header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last K bytes
        k = int(last)
        return (max(0, size - k), size - 1) if k and size else "unsatisfiable"
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


class Handler(BaseHTTPRequestHandler):
    state: ServerState  # set per server subclass

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_HEAD(self) -> None:
        self._respond(send_body=False)

    def do_GET(self) -> None:
        self._respond(send_body=True)

    def _respond(self, send_body: bool) -> None:
        st = self.state
        rng = self.headers.get("Range")
        with st.lock:
            st.ranges.append(rng)
            st.paths.append(self.path)
            drop = st.drops > 0
            st.drops -= int(drop)
        content = st.resolve(self.path)
        if content is None:
            self.send_error(404, "Not Found")
            return
        size = len(content) if isinstance(content, (bytes, bytearray)) else content.stat().st_size
        span = _byte_range(rng, size) if st.honour_range else None
        if span == "unsatisfiable":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if span is None:
            start, end = 0, size - 1
            self.send_response(200)
        else:
            start, end = span
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        length = end - start + 1
        self.send_header("Content-Length", str(length))
        if st.honour_range:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if not send_body:
            return
        cut = drop and st.drop_after is not None
        budget = min(length, st.drop_after) if cut else length
        try:
            self._write(content, start, budget)
            if cut:
                self.wfile.flush()
                time.sleep(st.stall)
                self.close_connection = True  # HTTP/1.0 anyway: the socket closes after this handler
        except (BrokenPipeError, ConnectionResetError):  # the client went away (timeouts, tests)
            self.close_connection = True

    def _write(self, content: bytes | Path, start: int, n: int) -> None:
        if isinstance(content, (bytes, bytearray)):
            view = memoryview(content)[start:start + n]
            for i in range(0, len(view), CHUNK):
                self.wfile.write(view[i:i + CHUNK])
            return
        with open(content, "rb") as f:
            f.seek(start)
            while n > 0:  # bounded: n shrinks by each non-empty chunk; stops at end of file
                chunk = f.read(min(CHUNK, n))
                if not chunk:
                    break
                self.wfile.write(chunk)
                n -= len(chunk)


class LocalServer:
    """A ThreadingHTTPServer bound to ``host:port`` (default 127.0.0.1, a free port) serving
    ``state``. The socket is bound on construction, so ``url()`` works at once; requests are
    answered between ``start()`` and ``stop()`` (or inside ``with``)."""

    def __init__(self, state: ServerState | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = state if state is not None else ServerState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.httpd.server_address[0]}:{self.port}"

    def url(self, path: str = "/") -> str:
        """Full URL of ``path`` (unquoted, e.g. ``/~maxbain/a b.zip``; percent-encoded here)."""
        return self.base_url + quote("/" + path.lstrip("/"), safe="/~")

    def start(self) -> "LocalServer":
        """Serve in a daemon thread until :meth:`stop`."""
        if self.thread is None:
            self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                           daemon=True, name=f"http-server-{self.port}")
            self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (later connections are refused)."""
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread.join(timeout=5)
            self.thread = None
        self.httpd.server_close()

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_files(files: dict[str, bytes | Path], **state_kw) -> LocalServer:
    """A server (not started) for ``{URL path: bytes or file}``; ``state_kw`` go to :class:`ServerState`."""
    return LocalServer(ServerState(files=dict(files), **state_kw))


def serve_directory(root: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 0, **state_kw) -> LocalServer:
    """A server (not started) for every file under ``root``, at ``/<relative path>``."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    return LocalServer(ServerState(directory=root, **state_kw), host=host, port=port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a directory over HTTP (Range requests supported).")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (default)")
    args = parser.parse_args(argv)
    try:
        srv = serve_directory(args.directory, host=args.host, port=args.port)
    except NotADirectoryError as exc:
        parser.error(str(exc))
    print(srv.base_url + "/", flush=True)
    for path in directory_files(args.directory):
        print(f"  {srv.url(path)}", file=sys.stderr)
    try:
        srv.httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
