#!/usr/bin/env bash
# Device tests of the model core, then benchmark items 1-3 (clustering kernels, visual encoder forward,
# training-step peak memory) on a GPU machine, straight from the working tree, with its own Python and PyTorch.
#
#   bash bench/gpu.sh                          # CUDA: device tests, then full shapes (< 9.5 minutes)
#   bash bench/gpu.sh --device cpu --quick     # CI: the same script on CPU, small shapes (< 90 s)
#   bash bench/gpu.sh --with-data              # also the data item (needs h5py, decord, PIL, ffmpeg)
#
# Python: $PYTHON if set, else python3 / python, else .venv/bin/python — the first that imports
# torch. torch is never installed here. The model core needs nothing but torch; the optional data
# item's light dependencies are pip-installed only if missing and only with --with-data, and the
# item is skipped when that fails (no internet on the GPU machines).
# Results: $OUT/bench_gpu.json and $OUT/bench_gpu.md ($OUT if set, else bench/results/), plus the
# log bench_gpu.log (with the device tests' outcome) and nvidia-smi's view of the GPU.
# bench/README.md is not modified (copy the Markdown block into it by hand, naming the GPU).
# Exit 0 when the device tests passed and every item ran.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

device=cuda
quick=()
with_data=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --device=*) device="${1#*=}"; shift ;;
        --quick) quick=(--quick); shift ;;
        --with-data) with_data=1; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "gpu.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

py=""
for cand in "${PYTHON:-}" python3 python "$root/.venv/bin/python"; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
    if "$cand" -c "import torch" >/dev/null 2>&1; then py="$cand"; break; fi
done
if [ -z "$py" ]; then
    echo "gpu.sh: no Python with torch found (set PYTHON=/path/to/python)" >&2
    exit 3
fi

out="${OUT:-$root/bench/results}"
mkdir -p "$out"
log="$out/bench_gpu.log"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

if [ "$device" = cuda ] && ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu.sh: CUDA not available to $py; running on CPU instead" | tee -a "$log"
    device=cpu
fi

{
    echo "gpu.sh $(date -u '+%Y-%m-%d %H:%M:%S UTC') device=$device ${quick[*]:-} python=$py"
    "$py" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
} 2>&1 | tee -a "$log"

items=clustering,encoder,memory
if [ "$with_data" = 1 ]; then
    missing=$("$py" - <<'EOF'
import importlib
print(" ".join(p for m, p in [("h5py", "h5py"), ("decord", "decord"), ("PIL", "pillow"), ("numpy", "numpy"),
                              ("pandas", "pandas"), ("imageio_ffmpeg", "imageio-ffmpeg")]
      if importlib.util.find_spec(m) is None))
EOF
)
    if [ -n "$missing" ]; then
        echo "gpu.sh: installing missing data deps: $missing (never torch)" | tee -a "$log"
        timeout 120 "$py" -m pip install --quiet --no-deps $missing >>"$log" 2>&1 \
            || echo "gpu.sh: could not install $missing" | tee -a "$log"
    fi
    if "$py" -c "import h5py, decord, PIL, numpy, pandas" >/dev/null 2>&1; then
        items="$items,data"
    else
        echo "gpu.sh: data item skipped (dependencies missing)" | tee -a "$log"
    fi
fi

# The model core's device tests first (tests/test_device.py: clustering, CLIP and the encoder on
# the device, agreement with the CPU and the per-row reference): a benchmark of wrong code is
# worth nothing. pytest is part of the GPU machines' image; on --device cpu the same tests run
# on the CPU (a check of the tests themselves).
tests_rc=0
if "$py" -c "import pytest" >/dev/null 2>&1; then
    echo "gpu.sh: device tests (tests/test_device.py)" | tee -a "$log"
    [ "$device" = cpu ] && export CENTERCLIP_TEST_DEVICE=cpu
    timeout 90 "$py" -m pytest -q -p no:cacheprovider tests/test_device.py -rs 2>&1 | tee -a "$log"
    tests_rc=${PIPESTATUS[0]}
    echo "gpu.sh: device tests exit $tests_rc" | tee -a "$log"
else
    echo "gpu.sh: pytest not importable by $py; device tests not run" | tee -a "$log"
    tests_rc=4
fi

# 470 s in all keeps the benchmarks under 8 minutes even if an item hangs (tests + benchmarks
# under 9.5 minutes).
timeout 470 "$py" "$here/run_all.py" --device "$device" "${quick[@]}" --items "$items" --no-readme \
    --timeout 300 --json "$out/bench_gpu.json" --md "$out/bench_gpu.md" 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] && rc=$tests_rc
echo "gpu.sh: exit $rc (device tests $tests_rc); results in $out/bench_gpu.json and $out/bench_gpu.md" | tee -a "$log"
exit "$rc"
