"""Benchmark of the batched clustering kernels against the per-row reference loop.

Usage (from the repository root)::

    .venv/bin/python bench/bench_clustering.py [--device cpu|cuda] [--quick] [--threads N]
                                               [--ref-rows R] [--no-readme]

For each shape (rows = videos x segments, tokens per segment, width, K) it times, on the
same random input (standard normal, roughly the scale of CLIP tokens):

* ``clustering.kmedoids`` (batched) and ``clustering_reference.kmedoids`` (row loop), and
  asserts that both give identical medoids and labels;
* ``clustering.spectral`` with the dense graph and with the paper's kNN graph
  (5 x frames per segment neighbours), and the dense graph in float64 (``dtype=torch.float64``;
  the default is float32, the original's precision), as a multiple of the batched k-medoids time.

Everything is timed with ``torch.utils.benchmark.Timer.blocked_autorange`` (median, after a
warm-up call). The reference loop runs on at most ``--ref-rows`` rows and its time is scaled
linearly to all rows (it is a loop over independent rows); the table says when that was done.

The Markdown table is printed and, unless ``--no-readme``, appended to ``bench/README.md``
under the "## Clustering kernels" section.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
import torch.utils.benchmark as tbench  # noqa: E402

import common  # noqa: E402 - also puts the repository root on sys.path

from centerclip.model import clustering as C  # noqa: E402
from centerclip.model import clustering_reference as R  # noqa: E402

SECTION = "## Clustering kernels"
RECORDS: list[dict] = []  # the rows of the last run(), for --json / run_all.py

# name, rows, tokens, width, K, frames per segment, default reference rows
FULL_SHAPES = [
    ("MSR-VTT/MSVD (B6-4,49) ViT-B/32: 64 videos x 4 segments", 256, 147, 768, 49, 3, 256),
    ("ActivityNet (B6-15,49) ViT-B/32: 64 videos x 15 segments", 960, 196, 768, 49, 4, 128),
]
QUICK_SHAPES = [
    ("quick: 16 rows x 147 tokens", 16, 147, 768, 49, 3, 16),
    ("quick: 8 rows x 60 tokens", 8, 60, 64, 10, 2, 8),
]




def _measure(fn, device: torch.device, min_run_time: float) -> tuple[float, float]:
    """(median, min) seconds per call over ``blocked_autorange`` blocks, after a warm-up."""
    fn()  # warm-up (allocator, kernels)
    common.sync(device)
    # Timer runs its statement with num_threads=1 unless told otherwise: pass the process's count
    t = tbench.Timer(stmt="fn(); sync()", globals={"fn": fn, "sync": lambda: common.sync(device)},
                     num_threads=torch.get_num_threads())
    m = t.blocked_autorange(min_run_time=min_run_time)
    return m.median, min(m.times)


def _fmt(t: tuple[float, float], scale: float = 1.0) -> str:
    return f"{t[0] * scale * 1e3:.0f} ({t[1] * scale * 1e3:.0f})"


def _ratio(a: tuple[float, float], b: tuple[float, float], scale: float = 1.0) -> str:
    return f"**{a[0] * scale / b[0]:.1f}x** ({a[1] * scale / b[1]:.1f}x)"


def run(args: argparse.Namespace) -> str:
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    gen = torch.Generator().manual_seed(args.seed)
    load_start = common.loadavg()
    rows_md = []
    for name, b, n, d, k, frames, ref_rows_default in shapes:
        x = torch.randn(b, n, d, generator=gen).to(device)
        ref_rows = min(b, args.ref_rows or ref_rows_default)
        knn = 5 * frames

        t_kmed = _measure(lambda: C.kmedoids(x, k), device, args.min_run_time)
        res = C.kmedoids(x, k)
        # Reference: the same protocol on ref_rows rows (each pass is a whole loop over rows).
        xr = x[:ref_rows]
        t_ref = _measure(lambda: R.kmedoids(xr, k), device, args.min_run_time)
        ref = R.kmedoids(xr, k)
        same = torch.equal(ref.medoids, res.medoids[:ref_rows]) and torch.equal(ref.labels, res.labels[:ref_rows])
        assert same, f"{name}: batched and reference k-medoids disagree"
        scale = b / ref_rows  # the loop's time is linear in the number of rows
        # The distance stage alone (centring, norms, Gram GEMM, clean-up, sqrt): every exact
        # implementation of the algorithm builds this matrix (the loop too, row by row), so
        # loop / this is the most that batching the rest could ever reach on this machine.
        norms = torch.empty(b, n, device=device)
        t_dist = _measure(lambda: C._pairwise_sq_distances(x, sqrt=True, norms=norms), device, args.min_run_time)

        t_spec = _measure(lambda: C.spectral(x, k), device, args.min_run_time)
        t_spec_knn = _measure(lambda: C.spectral(x, k, knn=knn), device, args.min_run_time)
        t_spec64 = _measure(lambda: C.spectral(x, k, dtype=torch.float64), device, args.min_run_time)
        scaled = "" if ref_rows == b else f" [timed on {ref_rows} rows, x{scale:g}]"
        rows_md.append(
            f"| {name} | {b}x{n}x{d}, K={k} | {_fmt(t_kmed)} | {_fmt(t_ref, scale)}{scaled} | "
            f"{_ratio(t_ref, t_kmed, scale)} | {_fmt(t_dist)}: {_ratio(t_ref, t_dist, scale)} | "
            f"{_fmt(t_spec)}: {_ratio(t_spec, t_kmed)} | "
            f"{_fmt(t_spec_knn)}: {_ratio(t_spec_knn, t_kmed)} (knn={knn}) | "
            f"{_fmt(t_spec64)}: {_ratio(t_spec64, t_kmed)} | identical |"
        )
        print(rows_md[-1], flush=True)
        RECORDS.append(dict(shape=name, rows=b, tokens=n, width=d, k=k, knn=knn, ref_rows=ref_rows,
                            kmedoids_s=t_kmed, reference_s=(t_ref[0] * scale, t_ref[1] * scale),
                            loop_over_batched=t_ref[0] * scale / t_kmed[0], distances_s=t_dist,
                            loop_over_distances=t_ref[0] * scale / t_dist[0], spectral_dense_s=t_spec,
                            spectral_knn_s=t_spec_knn, spectral_dense_over_kmedoids=t_spec[0] / t_kmed[0],
                            spectral_knn_over_kmedoids=t_spec_knn[0] / t_kmed[0], spectral_dense_float64_s=t_spec64,
                            spectral_dense_float64_over_kmedoids=t_spec64[0] / t_kmed[0], identical=bool(same)))

    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])
    dev_desc = torch.cuda.get_device_name(device) if device.type == "cuda" else common.cpu_model()
    header = [
        f"### {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} — device `{device.type}` ({dev_desc})",
        "",
        f"torch `{torch.__version__}`, CPU `{common.cpu_model()}` ({common.nproc()} logical cores), "
        f"`torch.get_num_threads()` = {torch.get_num_threads()}; commit `{common.git_commit()}`; command: `{cmd}`; "
        f"load average (1 min) at start / end: {load_start} / {common.loadavg()} (shared machine: other "
        "jobs compete for the cores, so absolute times vary run to run)",
        "",
        "Times in ms as median (min) over blocks; ratios from medians (from mins).",
        "",
        "| shape | B x N x D, K | batched kmedoids ms | reference loop ms | loop / batched | "
        "distance stage ms: loop / it (bound) | "
        "spectral dense ms: / kmedoids | spectral kNN ms: / kmedoids | spectral dense float64 ms: / kmedoids | "
        "medoids+labels |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    return "\n".join(header + rows_md) + "\n"





INTRO = (
    "Batched `centerclip.model.clustering` vs the per-row loop `centerclip.model.clustering_reference` "
    "(identical results asserted), and spectral clustering relative to k-medoids. Produced by "
    "`bench/bench_clustering.py`; random normal tokens (std 1); times are medians of "
    "`torch.utils.benchmark` runs. Targets on the 2-core CPU: loop / batched >= 20x, "
    "spectral / kmedoids <= 3x. The distance-stage column times the batched distance matrix alone "
    "(centring, norms, Gram GEMM, clean-up): loop / that time bounds what any batching of the rest "
    "could reach on the machine."
)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="small shapes (CI smoke run)")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave default)")
    p.add_argument("--ref-rows", type=int, default=0, help="rows timed for the reference loop (0: per-shape default)")
    p.add_argument("--min-run-time", type=float, default=2.0, help="seconds per blocked_autorange")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default="", help="also write the rows as JSON here")
    p.add_argument("--no-readme", action="store_true", help="print only, do not append to bench/README.md")
    args = p.parse_args(argv)
    RECORDS.clear()
    block = run(args)
    common.publish(SECTION, INTRO, dict(rows=RECORDS, markdown=block), args.json, not args.no_readme)
    return block


if __name__ == "__main__":
    main()
