"""Compress raw videos to the 3-fps, short-side-224 H.264 files the frame cache reads.

Fixes the preprocessing of the original code, mzhaoshuai/CenterCLIP at commit 886fe73, while keeping its intent:

- ``fps=3`` *filter* instead of the output option ``-r 3`` (a 5 s clip gives 15 frames, not 17);
- the *shorter* displayed side becomes exactly ``short_side`` and the other side keeps the aspect
  ratio, rounded to an even number (320x240 -> 298x224, 240x320 -> 224x298; the original turned
  portrait 240x320 into 224x168);
- phone rotation metadata is honoured: ffmpeg auto-rotates before our filters, so the
  landscape/portrait decision and the reported size are those of the displayed picture;
- every output is validated (decodes with decord, short side, frame count ~ fps x input
  duration) and only then moved into place; failures raise :class:`BadVideo` with a reason and
  never leave a partial destination file.

``compression="original"`` instead reproduces the frames of the original code's per-video command
``ffmpeg -y -i IN -filter:v "scale='if(gt(a,1),trunc(oh*a/2)*2,224)':'if(gt(a,1),224,trunc(ow*a/2)*2)'"
-map 0:v -r 3 OUT`` (OUT keeps IN's extension), for users who want exactly those frames: see
:func:`original_args`. Only the robustness that does not change the frames is kept there
(failures detected and reported as :class:`BadVideo`, atomic output, validation).

No ffprobe is needed (see :mod:`centerclip.data.probe`); the ffmpeg binary is
:func:`centerclip.data.ffmpeg_bin.ffmpeg_exe` (``$CENTERCLIP_FFMPEG``, system, imageio-ffmpeg).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TypeVar

import ffmpeg  # ffmpeg-python

from centerclip.util import atomic
from centerclip.data.ffmpeg_bin import FFmpegNotFound, ffmpeg_exe
from centerclip.data.probe import BadVideo, ffmpeg_banner, probe_video

__all__ = [
    "BadVideo",
    "COMPRESSIONS",
    "compress_video",
    "compress_many",
    "video_encoder",
    "expected_frames",
    "frame_tolerance",
    "original_size",
    "original_encoding",
    "original_args",
]

log = logging.getLogger(__name__)

PRESET = "veryfast"
CRF = 23
MPEG4_QSCALE = 3  # fallback encoder quality (2 = best .. 31)
COMPRESSIONS = ("ours", "original")


@functools.cache
def _encoders(exe: str) -> frozenset[str]:
    """Names of the encoders the ffmpeg binary ``exe`` has."""
    proc = subprocess.run(
        [exe, "-hide_banner", "-nostdin", "-encoders"],
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
    )
    return frozenset(
        line.split()[1] for line in proc.stdout.splitlines() if line.startswith(" ") and len(line.split()) > 1
    )


@functools.cache
def video_encoder(exe: str) -> str:
    """``"libx264"`` when the ffmpeg binary ``exe`` has it, else ``"mpeg4"`` (logged once)."""
    if "libx264" in _encoders(exe):
        return "libx264"
    log.warning("ffmpeg %s has no libx264 encoder: falling back to mpeg4 (MPEG-4 part 2, q:v %d)", exe, MPEG4_QSCALE)
    return "mpeg4"


# The original's extra frames: ``-r 3`` on the output (not the fps filter) keeps the first input
# frame and, for a constant-frame-rate muxer, duplicates towards the end. Measured with ffmpeg 5.1
# on 0.5-30 s clips: +1 frame over duration x fps (rounded up) for .avi/.mkv/.webm outputs
# (ffmpeg's "vfr" mode), +2 for .mp4/.mov ("cfr"): 5.3 s at 30 fps gives 17 (.avi) or 18 (.mp4)
# frames where the fps filter gives 16.
ORIGINAL_EXTRA_FRAMES = 1.5


def expected_frames(duration: float, fps: float, compression: str = "ours") -> float:
    """Frames ``duration`` seconds of video give at ``fps``: the fps filter's ``duration x fps``
    (5 s at 3 fps -> 15), or the original's ``-r`` output, 1-2 frames more (centre of the range)."""
    return duration * fps + (ORIGINAL_EXTRA_FRAMES if compression == "original" else 0.0)


def frame_tolerance(expected: float) -> float:
    """Allowed |decoded - expected| frames: 1 frame of rounding plus 2 % (timestamp jitter, VFR)."""
    return 1.0 + 0.02 * expected


def _scale_exprs(short_side: int) -> tuple[str, str]:
    # Landscape (iw > ih): height = short_side, width from the aspect, even (-2). Portrait and
    # square: width = short_side. iw/ih are the *displayed* sizes: autorotation runs first.
    return (f"if(gt(iw,ih),-2,{short_side})", f"if(gt(iw,ih),{short_side},-2)")


def original_size(width: int, height: int, short_side: int = 224) -> tuple[int, int]:
    """Output size of the original's ``scale`` filter for a ``width`` x ``height`` (displayed) input.

    With ``a = width / height``: ``w = if(gt(a,1), trunc(oh*a/2)*2, S)``,
    ``h = if(gt(a,1), S, trunc(ow*a/2)*2)``. Landscape (a > 1): height S, width S*a truncated to
    even (320x240 -> 298x224; 333x201 -> 370x224). Square: SxS. Portrait (a < 1): width S and
    height S*a (not S/a) truncated to even, i.e. the picture is squashed into a *landscape* frame
    with the inverted aspect ratio (240x320 -> 224x168, 720x1280 -> 224x126). A result of 0
    means "the input's size" to ffmpeg's scale filter (only for a < 2/S).
    """
    a = width / height  # double, as ffmpeg evaluates the expression
    if a > 1:
        return (math.trunc(short_side * a / 2) * 2 or width), short_side
    return short_side, (math.trunc(short_side * a / 2) * 2 or height)


# Source extension -> (ffmpeg's default encoders for that container, first available wins;
# frame-rate mode ffmpeg picks for that muxer). The original wrote OUT with IN's extension, so this
# is the encoder and -r behaviour its OUT got: avi's default video codec is MPEG-4 part 2 and ffmpeg
# treats avi as variable-frame-rate; mp4/mov/mkv default to H.264 when ffmpeg has libx264 (else
# MPEG-4 part 2); webm to VP9 (VP8 without libvpx-vp9); mp4/mov are constant-frame-rate muxers.
ORIGINAL_CONTAINERS: dict[str, tuple[tuple[str, ...], str]] = {
    ".avi": (("mpeg4",), "vfr"),
    ".mp4": (("libx264", "mpeg4"), "cfr"),
    ".m4v": (("libx264", "mpeg4"), "cfr"),
    ".mov": (("libx264", "mpeg4"), "cfr"),
    ".mkv": (("libx264", "mpeg4"), "vfr"),
    ".webm": (("libvpx-vp9", "libvpx"), "vfr"),
}


def original_encoding(src: str | os.PathLike, exe: str) -> tuple[str, str]:
    """``(encoder, fps_mode)`` the original's command got for ``src`` (by its extension); raise
    :class:`BadVideo` for an extension not in :data:`ORIGINAL_CONTAINERS` or a missing encoder."""
    ext = Path(src).suffix.lower()
    if ext not in ORIGINAL_CONTAINERS:
        raise BadVideo(src, f"compression 'original': no known ffmpeg default encoder for {ext or 'no'} extension "
                            f"(known: {', '.join(ORIGINAL_CONTAINERS)})")
    candidates, fps_mode = ORIGINAL_CONTAINERS[ext]
    encoder = next((e for e in candidates if e in _encoders(exe)), None)
    if encoder is None:
        raise BadVideo(src, f"compression 'original': ffmpeg {exe} has none of {', '.join(candidates)}")
    return encoder, fps_mode


@functools.cache
def _fps_mode_option(exe: str) -> str:
    """``-fps_mode`` (ffmpeg >= 5.1) or, for older binaries, its predecessor ``-vsync``."""
    proc = subprocess.run(
        [exe, "-hide_banner", "-nostdin", "-h", "full"],
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
    )
    return "-fps_mode" if "-fps_mode" in proc.stdout else "-vsync"


_ORIGINAL_TAG = "centerclip compression=original fps={fps:g} short_side={short_side}"


def original_args(
    src: Path, tmp: Path, fps: float, short_side: int, encoder: str, fps_mode: str, exe: str
) -> list[str]:
    """The original's ffmpeg command, writing MP4 to ``tmp`` with the original's frames.

    Same as the original: the ``scale`` expression verbatim (``short_side`` for 224), ``-r fps``
    as an output option, ffmpeg's autorotation, no pixel-format, quality or bitrate options (the
    encoder's defaults: MPEG-4 part 2 at 200 kb/s, libx264 crf 23 preset medium). The original's
    container differs (OUT kept IN's extension, e.g. AVI), so the two things the container chose
    are passed explicitly: the encoder and the frame-rate mode (:func:`original_encoding`). The
    container only wraps the encoded frames, so the decoded frames are identical (checked with
    ffmpeg 5.1, and by tests/test_compress.py: ``framemd5`` of the original command's own .avi /
    .mp4 output equals ours for .avi / .mp4 sources). Other differences do not touch the frames:
    only the first video stream (``0:v:0``; the cache decodes only that one), ``+faststart``, and
    a ``comment`` tag naming the mode and parameters (see :func:`_existing_ok`).
    """
    scale = f"scale='if(gt(a,1),trunc(oh*a/2)*2,{short_side})':'if(gt(a,1),{short_side},trunc(ow*a/2)*2)'"
    return [
        exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-i", os.fspath(src),
        "-map", "0:v:0", "-filter:v", scale, "-r", f"{fps:g}",
        "-c:v", encoder, _fps_mode_option(exe), fps_mode,
        "-metadata", "comment=" + _ORIGINAL_TAG.format(fps=fps, short_side=short_side),
        "-movflags", "+faststart", "-f", "mp4", os.fspath(tmp),
    ]  # fmt: skip


def _build_command(src: Path, tmp: Path, fps: float, short_side: int, encoder: str, exe: str) -> list[str]:
    w, h = _scale_exprs(short_side)
    stream = ffmpeg.input(str(src)).video.filter("fps", fps=fps).filter("scale", w, h).filter("setsar", "1")
    if encoder == "libx264":
        codec_args = dict(vcodec="libx264", preset=PRESET, crf=CRF)
    else:
        codec_args = {"vcodec": encoder, "q:v": MPEG4_QSCALE}
    out = stream.output(str(tmp), an=None, pix_fmt="yuv420p", f="mp4", movflags="+faststart", **codec_args)
    out = out.overwrite_output().global_args("-hide_banner", "-nostdin", "-loglevel", "error")
    return out.compile(cmd=exe)


_LOG_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")


def _tail(text: str, lines: int = 3, chars: int = 300) -> str:
    """Last ``lines`` non-empty stderr lines, without ffmpeg's ``[demuxer @ 0x...]`` prefixes."""
    kept = [_LOG_PREFIX.sub("", ln.strip()) for ln in text.splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)[-chars:]


def _decode_all(path: Path) -> tuple[int, set[tuple[int, int]]]:
    """Decode every frame of ``path`` with decord; return (frames decoded, set of (h, w) seen)."""
    import decord

    vr = decord.VideoReader(os.fspath(path), num_threads=1)
    n, shapes = len(vr), set()
    for start in range(0, n, 64):
        batch = vr.get_batch(list(range(start, min(n, start + 64)))).asnumpy()
        shapes.add(tuple(batch.shape[1:3]))
    return n, shapes


def _check_geometry(src: Path, inp: dict, width: int, height: int, short_side: int, compression: str, hint: str):
    """Raise BadVideo(src, ...) when the output size is not what ``compression`` makes of the input."""
    iw, ih = inp["width"], inp["height"]
    if compression == "original":
        if iw and ih and (width, height) != original_size(iw, ih, short_side):
            want_w, want_h = original_size(iw, ih, short_side)
            raise BadVideo(src, f"output is {width}x{height}, the original's scale gives {want_w}x{want_h} "
                                f"for the {iw}x{ih} input{hint}")
        if short_side not in (width, height):
            raise BadVideo(src, f"output is {width}x{height}, no side is {short_side}{hint}")
        return
    if min(width, height) != short_side:
        raise BadVideo(src, f"output is {width}x{height}, shorter side is not {short_side}{hint}")
    if iw and ih:
        if (iw > ih) != (width > height):
            raise BadVideo(src, f"output {width}x{height} has the wrong orientation for the {iw}x{ih} input")
        want_long = max(iw, ih) * short_side / min(iw, ih)
        if abs(max(width, height) - want_long) > 2:
            raise BadVideo(src, f"output {width}x{height} does not keep the {iw}x{ih} aspect ratio")


def _validate(tmp: Path, src: Path, inp: dict, fps: float, short_side: int, ffmpeg_err: str,
              compression: str = "ours") -> dict:
    """Check the encoded ``tmp`` against the input facts ``inp``; raise BadVideo(src, ...) if wrong."""
    hint = f" (ffmpeg said: {ffmpeg_err})" if ffmpeg_err else ""
    try:
        out = probe_video(tmp)
        n, shapes = _decode_all(tmp)
    except BadVideo as exc:
        raise BadVideo(src, f"output does not decode: {exc.reason}{hint}") from None
    except Exception as exc:
        raise BadVideo(src, f"output does not decode: {exc}{hint}") from None
    if out["rotation"]:
        raise BadVideo(src, f"output still carries a {out['rotation']} degree rotation (ffmpeg did not autorotate)")
    width, height = out["width"], out["height"]
    if shapes != {(height, width)}:
        raise BadVideo(src, f"output frames have inconsistent sizes {sorted(shapes)}{hint}")
    _check_geometry(src, inp, width, height, short_side, compression, hint)
    want = expected_frames(inp["duration"], fps, compression)
    if n < 1 or abs(n - want) > frame_tolerance(want):
        raise BadVideo(
            src,
            f"decoded {n} frames at {fps:g} fps where {inp['duration']:.2f} s of input should give "
            f"{want:.1f} (truncated or corrupt?){hint}",
        )
    return dict(width=width, height=height, frames=n)


def _check_compression(compression: str) -> None:
    """ValueError for a ``compression`` that is not one of :data:`COMPRESSIONS`."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")


def _checked_settings(fps: float, short_side: int, compression: str) -> int:
    """ValueError for settings no video could be compressed with; the short side as an int."""
    _check_compression(compression)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    if int(short_side) != short_side or short_side < 2 or short_side % 2:
        raise ValueError(f"short_side must be a positive even integer (yuv420p), got {short_side!r}")
    return int(short_side)


def _run_ffmpeg(cmd: list[str], src: Path, limit: float) -> str:
    """Run one ffmpeg command within ``limit`` seconds; the tail of its stderr, or BadVideo."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=limit,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BadVideo(src, f"ffmpeg did not finish within {limit:.0f} s") from None
    if proc.returncode != 0:
        raise BadVideo(src, f"ffmpeg failed (exit {proc.returncode}): {_tail(proc.stderr) or 'no message'}")
    return _tail(proc.stderr)


def compress_video(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    fps: float = 3,
    short_side: int = 224,
    *,
    timeout: float | None = None,
    compression: str = "ours",
) -> dict:
    """Re-encode ``src`` to ``dst``: video only, ``fps`` frames/s, shorter displayed side ``short_side``.

    The output is H.264 (``libx264``, preset veryfast, crf 23, yuv420p) in an MP4 container
    (whatever ``dst``'s extension), square pixels, no audio, no rotation metadata; ``mpeg4``
    when the ffmpeg binary lacks libx264 (logged; see ``codec`` in the result). Parent
    directories are created. The file is written under a temporary name beside ``dst``
    (:func:`centerclip.util.atomic.path`), validated, then renamed; on any failure it is removed and
    ``dst`` is untouched.

    Returns ``dict(width, height, frames, fps, codec)`` of the output.

    Raises :class:`BadVideo` (message ``"<src>: <reason>"``) for: a missing, empty or unreadable
    file; a non-video (e.g. text named .mp4); no video stream ("no video stream"); a truncated
    or corrupt file (ffmpeg error, or fewer decoded frames than fps x duration allows: a file
    cut anywhere, even at 50 %, is rejected — nothing partial goes into the dataset); an output
    that fails validation. ``timeout`` (seconds) bounds the ffmpeg run; default 120 s + 4 x the
    input duration. ``ValueError`` for bad arguments; ``FFmpegNotFound`` without ffmpeg.

    Input facts come from decord (exact frame timestamps); for an input decord cannot read
    but ffmpeg can (e.g. AV1), from the ``ffmpeg -i`` header (container duration).

    ``compression="original"``: the original code's frames instead (:func:`original_args`):
    ``-r fps`` (1-2 frames more, sampled earlier), the size :func:`original_size` gives
    (portrait squashed into landscape), the encoder ffmpeg picks for ``src``'s container at its
    defaults (``.avi``: MPEG-4 part 2, 200 kb/s; ``.mp4``: libx264 crf 23), still in an MP4
    container, still validated (against those rules) and written atomically; ``codec`` in the
    result is that encoder. A source extension the original's rule does not cover is a BadVideo.
    """
    short_side = _checked_settings(fps, short_side, compression)
    src, dst = Path(src).absolute(), Path(dst).absolute()
    exe = ffmpeg_exe()
    inp = probe_video(src, header_fallback=True)
    if not inp["duration"] > 0:
        raise BadVideo(src, "video stream has no duration")
    encoder, fps_mode = original_encoding(src, exe) if compression == "original" else (video_encoder(exe), None)
    # written beside dst under a temporary name ending like dst (.mp4 without one), validated, then renamed
    # no stale-temporary sweep: one listing of a folder of ~10^4 videos per video would be quadratic
    with atomic.path(dst, suffix=dst.suffix or ".mp4", clean_stale=False) as tmp:
        if compression == "original":
            cmd = original_args(src, tmp, fps, short_side, encoder, fps_mode, exe)
        else:
            cmd = _build_command(src, tmp, fps, short_side, encoder, exe)
        stderr = _run_ffmpeg(cmd, src, timeout if timeout is not None else 120.0 + 4.0 * inp["duration"])
        if tmp.stat().st_size == 0:
            raise BadVideo(src, f"ffmpeg wrote an empty file: {stderr or 'no message'}")
        result = _validate(tmp, src, inp, fps, short_side, stderr, compression)
    if "decord_error" in inp:
        log.info("%s: input probed from the ffmpeg header (%s)", src, inp["decord_error"])
    return dict(**result, fps=fps, codec=encoder)


_COMMENT = re.compile(r"^\s+comment\s*:\s*(.*?)\s*$", re.MULTILINE)


def _existing_ok(dst: Path, fps: float, short_side: int, compression: str = "ours") -> dict | None:
    """Probe facts of an existing ``dst`` when it can be kept for this mode, else None.

    An ``original`` output carries the comment tag :func:`original_args` writes (mode, fps,
    short side), an ``ours`` output carries none, so switching ``compression`` re-encodes
    instead of keeping the other mode's files.
    """
    try:
        info = probe_video(dst)
        m = _COMMENT.search(ffmpeg_banner(dst))
    except (BadVideo, subprocess.TimeoutExpired):
        return None
    tag = m.group(1) if m else ""
    if compression == "original":
        want_tag = _ORIGINAL_TAG.format(fps=fps, short_side=short_side)
        ok = tag == want_tag and short_side in (info["width"], info["height"])
    else:
        ok = not tag.startswith("centerclip compression=") and min(info["width"], info["height"]) == short_side
    return info if ok and info["rotation"] == 0 else None


def _compress_or_keep(src: Path, dst: Path, fps: float, short_side: int, compression: str,
                      skip_existing: bool) -> dict:
    """One video of :func:`compress_many`: an existing valid ``dst`` kept, else compressed anew."""
    if skip_existing and dst.exists():
        info = _existing_ok(dst, fps, short_side, compression)
        if info is not None:
            return dict(width=info["width"], height=info["height"], frames=info["frames"], skipped=True)
        log.info("%s exists but does not validate: re-encoding", dst)
    res = compress_video(src, dst, fps=fps, short_side=short_side, compression=compression)
    return dict(width=res["width"], height=res["height"], frames=res["frames"], skipped=False)


_Job = tuple[int, str, str]  # a video of compress_many: (position in items, src, dst)


def _outcome(fut: Future, job: _Job, results: list[tuple[int, dict]],
             bad: list[tuple[int, tuple[str, str]]]) -> None:
    """File a finished video under ``results`` or ``bad``; a missing ffmpeg or bad arguments raise."""
    i, s, d = job
    try:
        r = fut.result()
    except BadVideo as exc:
        bad.append((i, (s, exc.reason)))
    except (FFmpegNotFound, ValueError):
        raise
    except Exception as exc:  # keep going: report it with the bad videos
        log.exception("unexpected error compressing %s", s)
        bad.append((i, (s, f"internal error: {type(exc).__name__}: {exc}")))
    else:
        results.append((i, dict(id=Path(d).stem, src=s, dst=d, **r)))


def _gather(futures: dict[Future, _Job]) -> tuple[list[tuple[int, dict]], list[tuple[int, tuple[str, str]]]]:
    """Collect the videos as they finish, with a progress bar; on an error that stops all, cancel the rest."""
    from tqdm import tqdm

    results: list[tuple[int, dict]] = []
    bad: list[tuple[int, tuple[str, str]]] = []
    with tqdm(total=len(futures), desc="compress", unit="video", disable=None) as bar:
        try:
            for fut in as_completed(futures):
                _outcome(fut, futures[fut], results, bad)
                bar.update(1)
                bar.set_postfix(bad=len(bad), refresh=False)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return results, bad


_T = TypeVar("_T")


def _in_order(numbered: list[tuple[int, _T]]) -> list[_T]:
    """The items of ``(position, item)`` pairs, by position (threads finish in any order)."""
    return [item for _, item in sorted(numbered, key=lambda t: t[0])]


def compress_many(
    items: list[tuple[str | os.PathLike, str | os.PathLike]],
    fps: float = 3,
    short_side: int = 224,
    threads: int = 2,
    skip_existing: bool = True,
    compression: str = "ours",
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Compress many videos with ``threads`` worker threads (each runs one ffmpeg at a time).

    ``items`` are ``(src, dst)`` pairs. Returns ``(results, bad)`` in the order of ``items``:
    ``results`` holds ``dict(id=<dst stem>, src, dst, width, height, frames, skipped)`` for every
    usable video, ``bad`` holds ``(src, reason)`` for every :class:`BadVideo` (and, with an
    "internal error" reason, any other per-video exception); one bad video never stops the
    others. A missing ffmpeg (``FFmpegNotFound``) and bad arguments (``ValueError``) stop all.

    ``skip_existing``: a ``dst`` that already exists is kept (``skipped=True``, not re-encoded)
    when it opens with decord, its shorter side is ``short_side`` and it has no rotation; its
    frame count is not re-checked, because :func:`compress_video` only ever creates ``dst``
    after full validation. An existing ``dst`` failing that check is re-encoded.

    ``compression``: ``"ours"`` (default) or ``"original"`` (the original code's frames, see
    :func:`compress_video`); an existing ``dst`` made in the other mode is re-encoded.

    Progress shows with tqdm on a terminal (disabled when stderr is not a TTY).
    """
    _check_compression(compression)

    def one(src, dst) -> dict:
        return _compress_or_keep(Path(src), Path(dst), fps, short_side, compression, skip_existing)

    with ThreadPoolExecutor(max_workers=max(1, int(threads))) as pool:
        futures = {pool.submit(one, s, d): (i, os.fspath(s), os.fspath(d)) for i, (s, d) in enumerate(items)}
        results, bad = _gather(futures)
    return _in_order(results), _in_order(bad)
