"""``centerclip-search``: the command line (``index``, ``query``, ``embed-text``).

Every user error ends in one line on stderr and exit code 1, never a traceback. This module imports
only the standard library at import time, so that a missing ``workflow`` extra is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

PROG = "centerclip-search"
NEEDS_WORKFLOW = "centerclip-search needs the pipeline's packages: pip install 'centerclip[workflow]'"


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 1 and a one-line message for a usage error (as for every user error)."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        self.exit(1, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of all three commands."""
    parser = _Parser(prog=PROG, description="Search a folder of videos by text with a CenterCLIP model: build an "
                                            "index of video embeddings, then rank the videos for a text.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{index,query,embed-text}")
    ckpt_help = ("the model: a training run folder of this package (holding checkpoint.pt), its checkpoint.pt / "
                 "last.pt, or an authors' released <id>.zip or its extracted folder")
    device_help = "where the model runs (default: cuda when available, else cpu)"

    p = sub.add_parser("index", help="encode every video under a folder into an index (only new or changed "
                                     "videos on a rerun)",
                       description="Encode every video under DIR (recursively) into the HDF5 index OUT.h5. "
                                   "Videos are decoded as the data stage does (3 fps, shorter side = the model's "
                                   "resolution, centre crop) and sampled with the checkpoint's own evaluation frame "
                                   "count. Rerun to update: only new or changed videos are encoded, deleted ones "
                                   "dropped. Unreadable videos are listed in the index and on stderr.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help=ckpt_help)
    p.add_argument("--videos", required=True, metavar="DIR", help="folder searched recursively for video files")
    p.add_argument("--index", required=True, metavar="OUT.h5", help="the index to create or update")
    p.add_argument("--threads", type=_positive, default=min(4, os.cpu_count() or 1), metavar="N",
                   help="videos decoded in parallel (one ffmpeg each) and torch CPU threads (default: %(default)s)")
    p.add_argument("--batch-size", type=_positive, default=16, metavar="B",
                   help="videos per forward pass (default: %(default)s)")
    p.add_argument("--device", choices=("cpu", "cuda"), help=device_help)

    p = sub.add_parser("query", help="rank the indexed videos for one or more texts",
                       description="Rank every video of an index for each TEXT by exact cosine similarity.")
    p.add_argument("--index", required=True, metavar="OUT.h5", help="an index made by 'centerclip-search index'")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="the index's model, when its recorded path (model_path) moved; " + ckpt_help)
    p.add_argument("--top", type=_positive, default=5, metavar="K", help="videos per query (default: %(default)s)")
    p.add_argument("--json", action="store_true",
                   help='print [{"query": ..., "results": [{"path": ..., "score": ...}]}] instead of a table')
    p.add_argument("--html", metavar="PAGE.html",
                   help="also write a self-contained results page (thumbnails, scores, players)")
    p.add_argument("--device", choices=("cpu", "cuda"), help=device_help)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="what to search for (one query per TEXT)")

    p = sub.add_parser("embed-text", help="write text embeddings to an HDF5 file",
                       description="Embed texts with a model: /texts and /embeddings (L2-normalised) in T.h5.")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help=ckpt_help)
    p.add_argument("--file", metavar="F", help="read the texts from F, one per line (blank lines skipped)")
    p.add_argument("--out", required=True, metavar="T.h5", help="the HDF5 file to write")
    p.add_argument("--device", choices=("cpu", "cuda"), help=device_help)
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed (or --file)")
    return parser


def _device(name: str | None):
    import torch

    from centerclip.search.errors import SearchError

    if name == "cuda" and not torch.cuda.is_available():
        raise SearchError("--device cuda: CUDA is not available on this machine; use --device cpu")
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def _check_texts(texts: list[str], what: str = "TEXT") -> None:
    from centerclip.search.errors import SearchError

    if not texts:
        raise SearchError(f"no {what} given: say what to search for, e.g. {PROG} query --index OUT.h5 'a dog runs'")
    for i, text in enumerate(texts, 1):
        if not text.strip():
            raise SearchError(f"{what} {i} is blank: give a non-empty text")


def run_index(args: argparse.Namespace) -> int:
    """``index``: create or update the index; prints the summary line."""
    import torch

    from centerclip.search.checkpoints import load_model
    from centerclip.search.errors import SearchError
    from centerclip.search.index import read_attrs
    from centerclip.search.update import update_index

    videos, index = Path(args.videos), Path(args.index)
    if not videos.is_dir():
        raise SearchError(f"--videos {videos}: " + ("not a folder" if videos.exists() else "no such folder"))
    if index.is_dir():
        raise SearchError(f"--index {index} is a folder: give the path of an .h5 file")
    if index.exists():
        read_attrs(index)  # an unrelated file is refused before any work, and never overwritten
    device = _device(args.device)
    torch.set_num_threads(args.threads)
    import decord

    # decord's own FFmpeg logs every damaged packet it meets ("partial file", ...) straight to stderr; the
    # reason a video is skipped is reported once, on its "skipped" line
    decord.logging.set_level(decord.logging.QUIET)
    model, identity = load_model(args.checkpoint)
    summary = update_index(model, identity, videos, index, device, threads=args.threads,
                           batch_size=args.batch_size, progress=sys.stderr.isatty())
    print(summary.line(index))
    return 0


def run_query(args: argparse.Namespace) -> int:
    """``query``: rank the index's videos for each TEXT; a table, JSON, and/or an HTML page."""
    from centerclip.search.checkpoints import load_model
    from centerclip.search.errors import SearchError
    from centerclip.search.index import check_same_model, read_attrs, read_index
    from centerclip.search.page import Hit, render_page
    from centerclip.search.ranking import cosine_scores, top_k
    from centerclip.search.texts import encode_texts
    from centerclip.util import atomic

    _check_texts(args.texts)
    attrs = read_attrs(args.index)
    checkpoint = args.checkpoint or attrs.get("model_path")
    if not args.checkpoint and not Path(str(checkpoint)).exists():
        raise SearchError(f"{args.index} was made with model {checkpoint}, which no longer exists: "
                          "give its new path with --checkpoint")
    device = _device(args.device)
    model, identity = load_model(checkpoint)
    check_same_model(args.index, attrs, identity)
    idx = read_index(args.index, with_thumbnails=bool(args.html))
    texts = encode_texts(model.to(device), list(args.texts), identity.context_length, device)
    ranked = top_k(cosine_scores(texts, idx.embeddings), args.top) if idx.entries else [[] for _ in args.texts]

    if args.json:
        out = [{"query": q, "results": [{"path": idx.entries[i].path, "score": s} for i, s in hits]}
               for q, hits in zip(args.texts, ranked)]
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        for n, (q, hits) in enumerate(zip(args.texts, ranked)):
            print(("\n" if n else "") + f"query: {q}")
            if not hits:
                print("  (no videos in the index)")
                continue
            print(f"{'rank':>4}  {'score':>7}  path")
            for r, (i, s) in enumerate(hits, 1):
                print(f"{r:>4}  {s:>7.4f}  {idx.entries[i].path}")
    if args.html:
        pages = [(q, [Hit(r, idx.entries[i].path, s, idx.entries[i].duration, idx.entries[i].thumbnail)
                      for r, (i, s) in enumerate(hits, 1)]) for q, hits in zip(args.texts, ranked)]
        try:
            atomic.write_text(render_page(pages, args.html, args.index, attrs), args.html)
        except OSError as exc:
            raise SearchError(f"--html {args.html}: cannot be written ({exc.strerror or exc})") from None
        print(f"results page -> {args.html}", file=sys.stderr)
    return 0


def _read_lines(path: str) -> list[str]:
    from centerclip.search.errors import SearchError

    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SearchError(f"--file {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SearchError(f"--file {path}: cannot be read as UTF-8 text ({exc})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SearchError(f"--file {path}: no text in it (blank lines are skipped)")
    return lines


def run_embed_text(args: argparse.Namespace) -> int:
    """``embed-text``: write the texts' embeddings to ``--out``."""
    from centerclip.search.checkpoints import load_model
    from centerclip.search.errors import SearchError
    from centerclip.search.texts import encode_texts, write_text_embeddings

    if args.file and args.texts:
        raise SearchError("give either TEXT arguments or --file, not both")
    if args.file:
        texts = _read_lines(args.file)
    else:
        if not args.texts:
            raise SearchError(f"no TEXT given: give the texts as arguments or --file F, e.g. {PROG} embed-text "
                              "--checkpoint CKPT --out T.h5 'a dog runs'")
        _check_texts(args.texts)
        texts = list(args.texts)
    if Path(args.out).is_dir():
        raise SearchError(f"--out {args.out} is a folder: give the path of an .h5 file")
    device = _device(args.device)
    model, identity = load_model(args.checkpoint)
    embeddings = encode_texts(model.to(device), texts, identity.context_length, device)
    try:
        write_text_embeddings(args.out, texts, embeddings, identity)
    except OSError as exc:
        raise SearchError(f"--out {args.out}: cannot be written ({exc.strerror or exc})") from None
    print(f"embedded {len(texts)} texts -> {args.out}")
    return 0


COMMANDS = {"index": run_index, "query": run_query, "embed-text": run_embed_text}


def main(argv: list[str] | None = None) -> int:
    """Run ``centerclip-search`` with ``argv`` (default: the process's arguments); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        # the workflow extra: h5py (index files), decord + ffmpeg-python (decoding), Pillow (thumbnails), tqdm
        import decord  # noqa: F401
        import ffmpeg  # noqa: F401
        import h5py  # noqa: F401
        import PIL  # noqa: F401
        import tqdm  # noqa: F401

        from centerclip.search.errors import SearchError
        from centerclip.search import checkpoints, index, update  # noqa: F401 (their imports, checked here)
    except ImportError:
        print(NEEDS_WORKFLOW, file=sys.stderr)
        return 1
    try:
        return COMMANDS[args.command](args)
    except SearchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (the index, if any, is unchanged)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
