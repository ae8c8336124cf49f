"""The HTML results page of ``centerclip-search query --html``: one self-contained file.

Thumbnail strips are embedded as ``data:`` URIs; each video plays from its own file through a path
relative to the page's folder, so the page works when opened from disk and keeps working when the page
and the videos move together. Plain HTML with inline CSS: no script, no external resource.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #1b1b1b; background: #fafafa; }
header { border-bottom: 1px solid #ccc; margin-bottom: 1em; }
header dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; font-size: .9em; }
header dt { font-weight: 600; }
header dd { margin: 0; word-break: break-all; }
section.query { margin-bottom: 2.5em; }
h2 { font-size: 1.2em; }
ol.results { list-style: none; padding: 0; }
li.result { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .8em; margin-bottom: .8em; }
.meta { font-size: .95em; margin-bottom: .4em; }
.rank { font-weight: 700; margin-right: .6em; }
.score { font-family: ui-monospace, monospace; margin-right: .6em; }
.path { font-family: ui-monospace, monospace; word-break: break-all; }
img.strip { display: block; max-width: 100%; height: auto; margin: .4em 0; image-rendering: auto; }
video { display: block; max-width: 100%; max-height: 320px; background: #000; }
p.empty { color: #666; }
"""


@dataclass(frozen=True)
class Hit:
    """One ranked video of a query, as the page shows it."""

    rank: int  # 1-based
    path: str  # POSIX, relative to the index's videos_root
    score: float
    duration: float  # seconds
    thumbnail: bytes  # JPEG strip


def video_src(page_path: str | os.PathLike, videos_root: str | os.PathLike, rel_path: str) -> str:
    """``<source src>`` of a video: its path relative to the page's folder, URL-quoted.

    ``os.path.relpath`` from the page's folder to ``videos_root/rel_path`` (both made absolute),
    written with ``/`` and percent-encoded (UTF-8) except for ``/``, so spaces, ``#``, ``?``, ``%`` and
    non-ASCII names load the right file.
    """
    page_dir = os.path.dirname(os.path.abspath(page_path))
    target = os.path.join(os.path.abspath(videos_root), *rel_path.split("/"))
    rel = os.path.relpath(target, start=page_dir)
    return quote(Path(rel).as_posix(), safe="/")


def _data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def _duration(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60.0)
    return f"{int(m)}:{s:04.1f}"


def render_page(queries: list[tuple[str, list[Hit]]], page_path: str | os.PathLike, index_path: str | os.PathLike,
                attrs: dict) -> str:
    """The page for ``queries`` (text, its hits best first) of the index at ``index_path`` (``attrs``)."""
    e = html.escape
    root = str(attrs.get("videos_root", ""))
    header = [
        ("index", os.path.abspath(index_path)),
        ("videos", root),
        ("model", f"{attrs.get('model_path')} ({attrs.get('model_kind')}, "
                  f"sha256 {str(attrs.get('model_sha256'))[:12]})"),
        ("reduction", str(attrs.get("reduction"))),
        ("frames / words", f"{attrs.get('num_frames')} / {attrs.get('context_length')}"),
    ]
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>centerclip-search: {e(', '.join(q for q, _ in queries))}</title>",
           f"<style>{CSS}</style>", "</head>", "<body>", "<header>",
           f"<h1>centerclip-search results for {e(os.path.basename(os.fspath(index_path)))}</h1>", "<dl>"]
    out += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in header]
    out += ["</dl>", "</header>", "<main>"]
    for text, hits in queries:
        out += ['<section class="query">', f"<h2>“{e(text)}”</h2>"]
        if not hits:
            out.append('<p class="empty">No videos in the index.</p>')
        out.append('<ol class="results">')
        for h in hits:
            src = video_src(page_path, root, h.path)
            out += ['<li class="result">',
                    f'<div class="meta"><span class="rank">#{h.rank}</span>'
                    f'<span class="score">score {h.score:.4f}</span>'
                    f'<span class="duration">duration {e(_duration(h.duration))}</span></div>',
                    f'<div class="path">{e(h.path)}</div>',
                    f'<img class="strip" src="{_data_uri(h.thumbnail)}" alt="frames of {e(h.path, quote=True)}">',
                    f'<video controls preload="metadata"><source src="{e(src, quote=True)}">'
                    f'<a href="{e(src, quote=True)}">open the video</a></video>',
                    "</li>"]
        out += ["</ol>", "</section>"]
    out += ["</main>", "</body>", "</html>", ""]
    return "\n".join(out)
