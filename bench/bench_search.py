"""Benchmark of ``centerclip-search``: indexing throughput and query latency / memory (CPU).

Usage (from the repository root)::

    .venv/bin/python bench/bench_search.py [--quick] [--clips 6] [--repeats N] [--sizes 10000,1000000]
                                           [--json PATH] [--no-readme]

**Indexing.** ``--clips`` videos of 10-30 s are generated with ffmpeg's lavfi sources (testsrc, testsrc2,
life, cellauto, ...; 640x360, 25 fps, H.264) into a temporary folder and indexed with a randomly
initialised CLIP of ViT-B/32's dimensions (``bench/settings.py``; no download), for meanP and CenterCLIP
k-medoids (B6 − 4, 49), 12 frames, each in float32 and with ``torch.autocast("cpu", dtype=torch.bfloat16)``
around the video encoder. Reported per setting:

* decode: ``centerclip.search.videos.prepare_video`` per video, one at a time (probe, 3-fps compression,
  decord decode, centre crop, sampling, thumbnail strip) — the same for every model;
* encode: ``centerclip.search.update.encode_batch`` on all the prepared videos in one batch (the model
  forward), rows timed round-robin;
* end to end: ``centerclip.search.update.update_index`` into a fresh index with the CLI's defaults
  (``--threads min(4, cores)`` decode threads, ``--batch-size 16``), i.e. what ``centerclip-search index``
  does after loading the model;
* whether the bf16 rankings of a few text queries (top-5) are those of float32.

**Query.** Random L2-normalised float32 embeddings ``[N, 512]`` in memory, ranked with
``centerclip.search.ranking`` (``cosine_scores`` + ``top_k``, k = 10) for one query and a batch of 16;
float16 storage as ``cosine_scores`` gets it (it casts the whole matrix to float32 first), and torch's
float16 / bfloat16 matmul on the half-size matrix (no float32 copy: what a half-precision index could do),
each with whether its top-10 is float32's. Each latency is set beside the time of reading the stored matrix
once at this machine's memory bandwidth, measured in the same run (sum over a large float32 array, best of
several); extra memory is the query's peak beside the stored matrix (``peak_extra_bytes``).
The end-to-end ``query`` path (``read_index`` of an HDF5 index, ``encode_texts`` with the ViT-B/32-size text
tower, ranking; model loading excluded) is timed on a generated index of the first size.

The tables are printed and, unless ``--no-readme``, appended to ``bench/README.md`` under
"## Search (centerclip-search)". ``--quick``: two 1-1.4 s clips at 160x90, the narrow model of
``settings.QUICK_BACKBONES``, small N, one repeat (a smoke run of seconds, not a measurement).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import common  # noqa: E402
import settings as S  # noqa: E402

SECTION = "## Search (centerclip-search)"
INTRO = (
    "Indexing throughput and query latency of `centerclip-search`, on the CPU. Produced by "
    "`bench/bench_search.py`. Indexing: ffmpeg lavfi test clips (640x360, 25 fps, 10-30 s), a random-weight "
    "CLIP of ViT-B/32's dimensions (12 frames), meanP and CenterCLIP k-medoids (B6-4,49), float32 and "
    "`torch.autocast(\"cpu\", dtype=torch.bfloat16)` around the video encoder; decode = `prepare_video` one "
    "video at a time (probe, 3-fps compression, decode, crop, sampling, thumbnail), encode = `encode_batch` "
    "on all clips in one batch, end to end = `update_index` into a fresh index with the CLI's defaults. "
    "Query: exact cosine top-10 (`centerclip.search.ranking`) over random normalised [N, 512] embeddings, "
    "compared with reading the stored matrix once at the memory bandwidth measured in the same run. "
    "No targets: these numbers inform the CLI's defaults (precision, index type)."
)

K = 10  # top-k of the query rows
DIM = 512  # ViT-B/32's joint embedding width
CONTEXT = 32  # words per text at evaluation (the paper's MSR-VTT setting)
FRAMES = 12
QUERIES = ["a test pattern with a moving counter", "a cellular automaton growing", "the game of life",
           "colour bars covered in noise", "a man is riding a bicycle", "a colourful rotating circle"]

# (lavfi source graph, seconds): generated at --size and --rate; varied content so that rankings differ
SOURCES = [
    ("testsrc=s={s}:r={r}", 10),
    ("testsrc2=s={s}:r={r}", 14),
    ("life=s={s}:r={r}:mold=10:ratio=0.3:death_color=#202020:life_color=#00ff00", 18),
    ("cellauto=s={s}:r={r}:rule=110", 22),
    ("testsrc=s={s}:r={r},hue=H=2*PI*t/5:s=2", 26),
    ("smptehdbars=s={s}:r={r},noise=alls=30:allf=t", 30),
]


# ----------------------------------------------------------------------------------------------- machine

def cpu_flags() -> dict:
    """The CPU flags that decide bf16 speed (from /proc/cpuinfo), torch's view of them."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    out = {f: f in flags for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                                   "amx_bf16")}
    out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    try:
        out["mkldnn_bf16_supported"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        out["mkldnn_bf16_supported"] = None
    return out


def bandwidth(n_bytes: int, repeats: int) -> dict:
    """Read bandwidth in GB/s (1e9 bytes/s): best of ``repeats`` sums over one float32 array of ``n_bytes``,
    numpy (one thread) and torch (all its threads)."""
    a = np.ones(n_bytes // 4, dtype=np.float32)
    t = torch.from_numpy(a)
    best_np = best_t = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a.sum()
        best_np = min(best_np, time.perf_counter() - t0)
        t0 = time.perf_counter()
        t.sum()
        best_t = min(best_t, time.perf_counter() - t0)
    del a, t
    res = dict(bytes=n_bytes, numpy_gbs=n_bytes / best_np / 1e9, torch_gbs=n_bytes / best_t / 1e9,
               torch_threads=torch.get_num_threads())
    res["gbs"] = max(res["numpy_gbs"], res["torch_gbs"])
    return res


# ------------------------------------------------------------------------------------------------ timing

def round_robin(fns: dict, repeats: int, warmup: bool = True) -> dict[str, list[float]]:
    """Seconds of each function, ``repeats`` times round-robin (one untimed call each first)."""
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return times


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_extra_bytes(fn) -> int:
    """Peak memory added by one call of ``fn``: the larger of (a) the process's peak RSS during a call
    (``VmHWM`` after ``echo 5 > /proc/self/clear_refs``) minus its RSS before it, which sees every allocation
    but not one that reuses memory the allocator kept from an earlier call, and (b) tracemalloc's peak
    during another call, which sees numpy's and Python's allocations (not torch's) even when reused."""
    rss = 0
    try:
        before = _status_kb("VmRSS") * 1024
        Path("/proc/self/clear_refs").write_text("5")
        fn()
        rss = max(0, _status_kb("VmHWM") * 1024 - before)
    except OSError:
        pass
    tracemalloc.start()
    try:
        fn()
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(rss, traced)


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


# -------------------------------------------------------------------------------------------- indexing

def make_clips(folder: Path, n: int, size: str, rate: int, seconds_scale: float = 1.0) -> list[dict]:
    """``n`` clips of lavfi sources (H.264 mp4) in ``folder``; returns their names and durations."""
    clips = []
    for i in range(n):
        graph, secs = SOURCES[i % len(SOURCES)]
        secs = max(1.0, secs * seconds_scale)
        out = folder / f"clip{i:02d}.mp4"
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
               graph.format(s=size, r=rate), "-t", f"{secs:g}", "-c:v", "libx264", "-preset", "veryfast",
               "-pix_fmt", "yuv420p", str(out)]
        subprocess.run(cmd, check=True, timeout=300)
        clips.append(dict(name=out.name, source=graph.split("=")[0], seconds=secs, bytes=out.stat().st_size))
    return clips


def build_models(quick: bool):
    """(meanP model, CenterCLIP (B6-4,49) model) sharing one random CLIP of ViT-B/32's dimensions."""
    from centerclip.model.clip import CLIP, CLIPConfig
    from centerclip.model.retrieval import RetrievalModel
    from centerclip.model.video_encoder import ClusterStage, TokenReduction

    bb = (S.QUICK_BACKBONES if quick else S.BACKBONES)["ViT-B/32"]
    torch.manual_seed(0)
    clip = CLIP(CLIPConfig(**bb)).eval()
    meanp = RetrievalModel(clip, TokenReduction("meanP")).eval()
    cc = RetrievalModel(clip, TokenReduction("centerclip", (ClusterStage(block=6, segments=4, clusters=49),))).eval()
    return {"meanP": meanp, "CenterCLIP (B6-4,49)": cc}, bb


def ranking_check(fp32: np.ndarray, bf16: np.ndarray, texts32: np.ndarray, texts16: np.ndarray) -> dict:
    """Compare top-5 orders of fp32 and bf16 video embeddings for the same texts."""
    from centerclip.search.ranking import cosine_scores, top_k

    k = min(5, len(fp32))
    s32, s16 = cosine_scores(texts32, fp32), cosine_scores(texts32, bf16)
    s16t = cosine_scores(texts16, bf16)
    r32 = [[i for i, _ in row] for row in top_k(s32, k)]
    r16 = [[i for i, _ in row] for row in top_k(s16, k)]
    r16t = [[i for i, _ in row] for row in top_k(s16t, k)]
    # the smallest gap between consecutive fp32 scores of a query's top k+1 (how near the ties are)
    srt = -np.sort(-s32, axis=1)[:, :min(k + 1, s32.shape[1])]
    gap = float(np.min(np.diff(-srt, axis=1))) if srt.shape[1] > 1 else float("nan")
    cos = np.sum(fp32 * bf16, axis=1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(bf16, axis=1))
    return dict(k=k, same_videos_bf16=sum(a == b for a, b in zip(r32, r16)),
                same_all_bf16=sum(a == b for a, b in zip(r32, r16t)), queries=len(r32),
                min_cos=float(cos.min()), max_abs_score_diff=float(np.abs(s32 - s16).max()),
                max_abs_score_diff_all=float(np.abs(s32 - s16t).max()), min_gap=gap,
                ranks_fp32=r32, ranks_bf16=r16, ranks_bf16_texts=r16t)


def run_indexing(args, tmp: Path, models: dict, bb: dict) -> dict:
    import decord

    from centerclip.search.checkpoints import identity_of
    from centerclip.search.texts import encode_texts
    from centerclip.search.update import encode_batch, update_index
    from centerclip.search.videos import prepare_video

    decord.logging.set_level(decord.logging.QUIET)
    cpu = torch.device("cpu")
    videos = tmp / "videos"
    videos.mkdir()
    t0 = time.perf_counter()
    clips = make_clips(videos, args.clips, "160x90" if args.quick else "640x360", 25,
                       0.1 if args.quick else 1.0)
    gen_s = time.perf_counter() - t0
    print(f"generated {len(clips)} clips in {gen_s:.1f} s: " + ", ".join(f"{c['source']} {c['seconds']:g}s"
                                                                         for c in clips), flush=True)
    size = bb["image_resolution"]
    work = tmp / "work"
    work.mkdir()

    # decode: one video at a time, repeats round-robin over the clips (the first pass's output kept)
    prepared = {}
    decode_times: dict[str, list[float]] = {c["name"]: [] for c in clips}
    for _ in range(args.repeats):
        for c in clips:
            t0 = time.perf_counter()
            p = prepare_video(videos / c["name"], size, FRAMES, work)
            decode_times[c["name"]].append(time.perf_counter() - t0)
            prepared.setdefault(c["name"], p)
    decode_per_clip = {k: common.median(v) for k, v in decode_times.items()}
    decode_s_video = sum(decode_per_clip.values()) / len(clips)
    batch = [prepared[c["name"]] for c in clips]
    print(f"decode: {decode_s_video:.3f} s/video (serial, median over {args.repeats})", flush=True)

    # encode: all clips in one batch per setting, round-robin
    outs: dict[str, np.ndarray] = {}
    fns = {}
    for name, model in models.items():
        for prec in ("fp32", "bf16"):
            def fn(model=model, key=(name, prec), bf16=(prec == "bf16")):
                with autocast(bf16):
                    outs[key] = encode_batch(model, batch, cpu)
            fns[(name, prec)] = fn
    load_enc = common.loadavg()
    enc_times = round_robin(fns, args.repeats)
    for key, ts in enc_times.items():
        print(f"encode {key}: {common.median(ts) / len(batch):.3f} s/video", flush=True)

    # the bf16 rankings against fp32 (texts in fp32, and texts also under autocast)
    model0 = next(iter(models.values()))
    texts32 = encode_texts(model0, QUERIES, CONTEXT, cpu)
    with autocast(True):
        texts16 = encode_texts(model0, QUERIES, CONTEXT, cpu)
    checks = {name: ranking_check(outs[(name, "fp32")], outs[(name, "bf16")], texts32, texts16) for name in models}

    # end to end: update_index into a fresh index, CLI defaults
    threads = min(4, os.cpu_count() or 1)
    e2e_fns = {}
    counter = [0]
    for name, model in models.items():
        ident = identity_of(model, tmp / f"model-{len(e2e_fns)}", "run", "0" * 64, FRAMES, CONTEXT)
        for prec in ("fp32", "bf16"):
            def fn(model=model, ident=ident, bf16=(prec == "bf16")):
                counter[0] += 1
                out = tmp / f"index{counter[0]}.h5"
                with autocast(bf16):
                    summary = update_index(model, ident, videos, out, cpu, threads=threads, batch_size=16,
                                           warn=lambda line: None)
                assert summary.indexed == len(clips), summary
                out.unlink()
            e2e_fns[(name, prec)] = fn
    load_e2e = common.loadavg()
    e2e_times = round_robin(e2e_fns, args.e2e_repeats, warmup=False)

    rows = []
    n = len(clips)
    for name in models:
        base_enc = common.median(enc_times[(name, "fp32")])
        base_e2e = common.median(e2e_times[(name, "fp32")])
        for prec in ("fp32", "bf16"):
            enc = common.median(enc_times[(name, prec)])
            e2e = common.median(e2e_times[(name, prec)])
            enc_v = enc / n
            rows.append(dict(model=name, precision=prec, decode_s_video=decode_s_video, encode_s_video=enc_v,
                             encode_s_video_min=min(enc_times[(name, prec)]) / n,
                             decode_share=decode_s_video / (decode_s_video + enc_v),
                             encode_share=enc_v / (decode_s_video + enc_v),
                             encode_videos_min=60 / enc_v, serial_videos_min=60 / (decode_s_video + enc_v),
                             e2e_s=e2e, e2e_times_s=e2e_times[(name, prec)], e2e_videos_min=60 * n / e2e,
                             encode_speedup_vs_fp32=base_enc / enc, e2e_speedup_vs_fp32=base_e2e / e2e))
    return dict(clips=clips, generate_s=gen_s, decode_s_per_clip=decode_per_clip, decode_times_s=decode_times,
                decode_s_video=decode_s_video, encode_times_s={f"{k[0]} {k[1]}": v for k, v in enc_times.items()},
                threads=threads, rows=rows, ranking=checks, load_encode=load_enc, load_e2e=load_e2e,
                video_seconds=sum(c["seconds"] for c in clips))


# ----------------------------------------------------------------------------------------------- query

def normalised(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def torch_scores(texts: np.ndarray, videos: torch.Tensor) -> np.ndarray:
    """float32 [Q, N] scores of videos stored as a half-precision torch tensor [N, E] (float16 or bfloat16),
    computed in that precision by torch's matmul (no float32 copy of the matrix)."""
    q = torch.from_numpy(np.asarray(texts, dtype=np.float32)).to(videos.dtype)
    return (q @ videos.T).float().numpy()


def run_query(args, bw: dict, tmp: Path, text_model) -> dict:
    from centerclip.search.ranking import cosine_scores, top_k

    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        v32 = normalised(rng, n)
        v16 = v32.astype(np.float16)
        t16 = torch.from_numpy(v16)  # the same memory
        tb16 = torch.from_numpy(v32).bfloat16()
        qs = {1: normalised(rng, 1), 16: normalised(rng, 16)}
        paths = {
            "float32": (v32, cosine_scores),
            "float16, cosine_scores (casts the matrix to float32)": (v16, cosine_scores),
            "float16, torch matmul in float16": (t16, torch_scores),
            "bfloat16, torch matmul in bfloat16": (tb16, torch_scores),
        }
        exact = {nq: [[i for i, _ in row] for row in top_k(cosine_scores(q, v32), K)] for nq, q in qs.items()}
        fns, meta = {}, {}
        for pname, (store, scorer) in paths.items():
            for nq, q in qs.items():
                def f_scores(q=q, store=store, scorer=scorer):
                    return scorer(q, store)

                def f_total(q=q, store=store, scorer=scorer):
                    return top_k(scorer(q, store), K)
                fns[(pname, nq, "scores")] = f_scores
                fns[(pname, nq, "total")] = f_total
                meta[(pname, nq)] = (store, f_total)
        repeats = args.query_repeats if n <= 100_000 else max(3, args.query_repeats // 4)
        load = common.loadavg()
        times = round_robin(fns, repeats)
        for (pname, nq), (store, f_total) in meta.items():
            sc, tot = times[(pname, nq, "scores")], times[(pname, nq, "total")]
            nbytes = store.nbytes if isinstance(store, np.ndarray) else store.element_size() * store.nelement()
            limit = nbytes / (bw["gbs"] * 1e9)
            extra = peak_extra_bytes(f_total)
            same = sum([i for i, _ in row] == ex for row, ex in zip(f_total(), exact[nq]))
            rows.append(dict(n=n, storage=pname, queries=nq, scores_ms=common.median(sc) * 1e3,
                             total_ms=common.median(tot) * 1e3, total_ms_min=min(tot) * 1e3,
                             ms_per_query=common.median(tot) * 1e3 / nq, stored_mib=nbytes / 2**20,
                             extra_peak_mib=extra / 2**20, read_once_ms=limit * 1e3,
                             same_top_k_as_float32=same,
                             scores_over_limit=common.median(sc) / limit, total_over_limit=common.median(tot) / limit,
                             load_at_start=load, repeats=repeats))
            r = rows[-1]
            print(f"N={n} {pname} Q={nq}: scores {r['scores_ms']:.2f} ms, total {r['total_ms']:.2f} ms, "
                  f"limit {r['read_once_ms']:.2f} ms, extra {r['extra_peak_mib']:.1f} MiB", flush=True)
        del v32, v16, t16, tb16, fns, meta
    e2e = run_query_e2e(args, tmp, text_model, rng)
    return dict(rows=rows, e2e=e2e)


def run_query_e2e(args, tmp: Path, model, rng) -> list[dict]:
    """``query``'s path on a generated HDF5 index: read_index, encode_texts, cosine_scores + top_k."""
    from centerclip.search.checkpoints import identity_of
    from centerclip.search.index import Entry, index_attrs, read_index, write_index
    from centerclip.search.ranking import cosine_scores, top_k
    from centerclip.search.texts import encode_texts

    n = args.sizes[0]
    emb = normalised(rng, n, int(model.clip.config.embed_dim))
    ident = identity_of(model, tmp / "model", "run", "0" * 64, FRAMES, CONTEXT)
    entries = [Entry(f"videos/{i:07d}.mp4", 1000 + i, 10**18 + i, 15.0, FRAMES, emb[i], b"") for i in range(n)]
    path = tmp / "query_index.h5"
    write_index(path, index_attrs(ident, tmp / "videos", 3.0), entries, [])
    del entries
    cpu = torch.device("cpu")
    out = []
    texts = (QUERIES * 3)[:16]
    for nq in (1, 16):
        parts: dict[str, list[float]] = {"read_index": [], "encode_texts": [], "rank": []}
        encode_texts(model, texts[:nq], CONTEXT, cpu)  # warm-up
        for _ in range(args.query_repeats):
            t0 = time.perf_counter()
            idx = read_index(path, with_thumbnails=False)
            t1 = time.perf_counter()
            q = encode_texts(model, texts[:nq], CONTEXT, cpu)
            t2 = time.perf_counter()
            top_k(cosine_scores(q, idx.embeddings), K)
            t3 = time.perf_counter()
            parts["read_index"].append(t1 - t0)
            parts["encode_texts"].append(t2 - t1)
            parts["rank"].append(t3 - t2)
        totals = [a + b + c for a, b, c in zip(*parts.values())]
        out.append(dict(n=n, queries=nq, file_mib=path.stat().st_size / 2**20,
                        **{f"{k}_ms": common.median(v) * 1e3 for k, v in parts.items()},
                        total_ms=common.median(totals) * 1e3))
        print(f"query e2e N={n} Q={nq}: " + ", ".join(f"{k} {common.median(v) * 1e3:.1f} ms"
                                                      for k, v in parts.items()), flush=True)
    return out


# ---------------------------------------------------------------------------------------------- report

def _yn(b) -> str:
    return "yes" if b else "no"


def markdown(res: dict, info: dict) -> str:
    ix, q, bw, fl = res["indexing"], res["query"], res["bandwidth"], res["cpu_flags"]
    hdr = common.header("cpu", info, common.command_line(), res["load_start"], res["load_end"])
    srcs = ", ".join(f"{c['source']} {c['seconds']:g} s" for c in ix["clips"])
    lines = hdr + [
        f"CPU flags: avx512_bf16 **{_yn(fl['avx512_bf16'])}**, amx_bf16 / amx_tile **{_yn(fl['amx_bf16'])}** / "
        f"{_yn(fl['amx_tile'])}, avx512_fp16 {_yn(fl['avx512_fp16'])}, avx512_vnni {_yn(fl['avx512_vnni'])}; torch "
        f"CPU capability `{fl['torch_cpu_capability']}`, oneDNN bf16 supported: {fl['mkldnn_bf16_supported']}.",
        "",
        f"Indexing: {len(ix['clips'])} generated clips ({srcs}; {res['clip_size']}, 25 fps, H.264; "
        f"{ix['video_seconds']:g} s of video in all), {FRAMES} frames per video, random-weight CLIP of "
        f"{res['backbone']}'s dimensions. Decode = `prepare_video` one video at a time (median of "
        f"{res['repeats']} passes); encode = `encode_batch` of all {len(ix['clips'])} clips in one batch "
        f"(median of {res['repeats']} round-robin repeats; load at start {ix['load_encode']}); end to end = "
        f"`update_index` into a fresh index, {ix['threads']} decode threads, batch 16 (median of "
        f"{res['e2e_repeats']}; load at start {ix['load_e2e']}). Shares from decode + encode s/video.",
        "",
        "Decode per clip, s (one at a time): " + ", ".join(
            f"{c['source']} {c['seconds']:g} s: {ix['decode_s_per_clip'][c['name']]:.2f}" for c in ix["clips"])
        + f"; decode alone **{60 / ix['decode_s_video']:.0f} videos/min** one at a time.",
        "",
        "| model | precision | decode s/video | encode s/video | decode / encode share | encode videos/min | "
        "end-to-end s | end-to-end videos/min | bf16 / fp32 speed: encode | bf16 / fp32 speed: end to end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ix["rows"]:
        bf = r["precision"] == "bf16"
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['decode_s_video']:.2f} | {r['encode_s_video']:.3f} | "
            f"{r['decode_share'] * 100:.0f}% / {r['encode_share'] * 100:.0f}% | {r['encode_videos_min']:.0f} | "
            f"{r['e2e_s']:.1f} | **{r['e2e_videos_min']:.1f}** | "
            f"{('**%.2fx**' % r['encode_speedup_vs_fp32']) if bf else '1.00x'} | "
            f"{('**%.2fx**' % r['e2e_speedup_vs_fp32']) if bf else '1.00x'} |")
    lines += [
        "",
        f"bf16 rankings vs fp32 on these clips ({len(QUERIES)} text queries, top-{next(iter(ix['ranking'].values()))['k']} "
        "order; texts in fp32, and texts also under autocast):",
        "",
        "| model | top-5 identical (bf16 videos) | top-5 identical (bf16 videos and texts) | min cos(fp32, bf16) "
        "video embedding | max abs score diff (videos / both) | smallest fp32 score gap in a top-6 |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in ix["ranking"].items():
        lines.append(f"| {name} | **{c['same_videos_bf16']}/{c['queries']}** | {c['same_all_bf16']}/{c['queries']} | "
                     f"{c['min_cos']:.5f} | {c['max_abs_score_diff']:.4f} / {c['max_abs_score_diff_all']:.4f} | "
                     f"{c['min_gap']:.4f} |")
    lines += [
        "",
        f"Query: exact top-{K}, random normalised [N, {DIM}] embeddings in memory; memory bandwidth "
        f"**{bw['gbs']:.1f} GB/s** (best of {res['bw_repeats']} sums over {bw['bytes'] / 1e9:.1f} GB: numpy 1 thread "
        f"{bw['numpy_gbs']:.1f} GB/s, torch {bw['torch_threads']} threads {bw['torch_gbs']:.1f} GB/s); read-once "
        "limit = stored bytes / bandwidth. Times in ms, median (min) of round-robin repeats; extra = the "
        "query's peak memory beside the stored matrix (the larger of peak RSS after clear_refs minus RSS before, "
        "and tracemalloc's peak); top-10 = "
        "float32's: queries whose top-10 order is the float32 path's.",
        "",
        "| N | storage | queries | scores ms | total ms (scores + top_k) | ms / query | stored MiB | extra MiB | "
        "read-once ms | total / read-once | top-10 = float32's |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in q["rows"]:
        lines.append(f"| {r['n']:,} | {r['storage']} | {r['queries']} | {r['scores_ms']:.2f} | "
                     f"**{r['total_ms']:.2f}** ({r['total_ms_min']:.2f}) | {r['ms_per_query']:.2f} | "
                     f"{r['stored_mib']:.0f} | {r['extra_peak_mib']:.1f} | {r['read_once_ms']:.2f} | "
                     f"**{r['total_over_limit']:.1f}x** | {r['same_top_k_as_float32']}/{r['queries']} |")
    lines += [
        "",
        "The `query` path on a generated HDF5 index (embeddings only; model loading excluded): `read_index` "
        f"(no thumbnails), `encode_texts` with {res['backbone']}'s text tower (fp32), ranking; median of "
        f"{res['query_repeats']}.",
        "",
        "| N | queries | index file MiB | read_index ms | encode_texts ms | rank ms | total ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in q["e2e"]:
        lines.append(f"| {r['n']:,} | {r['queries']} | {r['file_mib']:.1f} | {r['read_index_ms']:.1f} | "
                     f"{r['encode_texts_ms']:.1f} | {r['rank_ms']:.2f} | **{r['total_ms']:.1f}** |")
    if res["quick"]:
        lines += ["", "**--quick smoke run** (narrow model, tiny clips and N): not a measurement."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict:
    if shutil.which("ffmpeg") is None:
        raise SystemExit("bench_search.py needs ffmpeg on PATH to generate its clips")
    torch.set_num_threads(args.threads or (1 if args.quick else min(4, os.cpu_count() or 1)))
    load_start = common.loadavg()
    flags = cpu_flags()
    with tempfile.TemporaryDirectory(prefix="bench_search_") as d:
        tmp = Path(d)
        models, bb = build_models(args.quick)
        indexing = run_indexing(args, tmp, models, bb)
        bw = bandwidth(args.bw_bytes, args.bw_repeats)
        print(f"bandwidth: {bw['gbs']:.1f} GB/s (numpy {bw['numpy_gbs']:.1f}, torch {bw['torch_gbs']:.1f})", flush=True)
        query = run_query(args, bw, tmp, models["meanP"])
    info = common.machine("cpu")
    res = dict(info=info, quick=bool(args.quick), load_start=load_start, cpu_flags=flags, indexing=indexing,
               bandwidth=bw, query=query, repeats=args.repeats, e2e_repeats=args.e2e_repeats,
               query_repeats=args.query_repeats, bw_repeats=args.bw_repeats,
               clip_size="160x90" if args.quick else "640x360",
               backbone="ViT-B/32 (quick: narrow)" if args.quick else "ViT-B/32")
    res["load_end"] = common.loadavg()
    res["markdown"] = markdown(res, info)
    return res


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny clips, narrow model, small N (CI smoke run)")
    p.add_argument("--clips", type=int, default=0, help="generated clips (default 6; --quick 2)")
    p.add_argument("--repeats", type=int, default=0, help="decode passes and encode repeats (default 3; --quick 1)")
    p.add_argument("--e2e-repeats", type=int, default=0, help="update_index runs per setting (default 2; --quick 1)")
    p.add_argument("--query-repeats", type=int, default=0,
                   help="query repeats at N <= 100k (default 20; a quarter, at least 3, above; --quick 2)")
    p.add_argument("--sizes", default="", help="indexed embeddings N, comma-separated (default 10000,1000000)")
    p.add_argument("--bw-bytes", type=float, default=0, help="bytes of the bandwidth array (default 1.6e9)")
    p.add_argument("--bw-repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: min(4, cores) as the CLI; --quick 1)")
    p.add_argument("--json", default="", help="also write the result as JSON here")
    p.add_argument("--no-readme", action="store_true", help="print only, do not append to bench/README.md")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    q = args.quick
    args.clips = args.clips or (2 if q else 6)
    args.repeats = args.repeats or (1 if q else 3)
    args.e2e_repeats = args.e2e_repeats or (1 if q else 2)
    args.query_repeats = args.query_repeats or (2 if q else 20)
    args.sizes = [int(float(x)) for x in (args.sizes or ("1000,10000" if q else "10000,1000000")).split(",") if x]
    args.bw_bytes = int(args.bw_bytes or (16e6 if q else 1.6e9))
    if q:
        args.bw_repeats = min(args.bw_repeats, 2)
    res = run(args)
    common.publish(SECTION, INTRO, res, args.json, not args.no_readme)
    return res


if __name__ == "__main__":
    main()
