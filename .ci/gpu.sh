#!/usr/bin/env bash
# The one script for a lent GPU machine (layer 3 of the kernel verification). Installs nothing: that machine
# has Python 3.12, numpy, numba, cupy-cuda13x, torch (CUDA 13) and pytest, no network, no Keras, no
# hatchling. Runs from source (PYTHONPATH=.), in under 5 minutes:
#
#   1. environment: GPU, versions, which optional peers are importable
#   2. pytest -m gpu: every gpu-marked test (the backend fixture's cupy and torch_cuda inputs), with host
#      synchronisation forbidden inside every update_state (cupyx.allow_synchronize(False) and torch's sync
#      debug mode "error", plugin tests/cuda_emu/gpu_guard.py); Keras tests skip (Keras is absent)
#   3. each benchmarks/bench_*.py --quick (the CUDA path is timed when a GPU is present)
#
# Logs and summary.txt go to $OUT (or ./gpu_out). Exit status: non-zero if any step failed.
#
#   bash .ci/gpu.sh             # on the GPU machine
#   bash .ci/gpu.sh --dry-run   # CI, no GPU: bash -n, py_compile of the benchmarks, pytest --collect-only -m gpu
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
OUT_DIR=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT_DIR"
export OUT="$OUT_DIR"
export PYTHONPATH=".:tests${PYTHONPATH:+:$PYTHONPATH}"
export CI=""                          # a missing Keras skips its tests here instead of failing the run
export KERAS_BACKEND=torch
export CUPY_CACHE_DIR=${CUPY_CACHE_DIR:-${TMPDIR:-/tmp}/gpumetrics_cupy_cache}  # not under $OUT: cubins are big
PY=${PYTHON:-python}
SUMMARY="$OUT_DIR/summary.txt"
DEADLINE=$(( $(date +%s) + ${GPU_SH_BUDGET_S:-285} ))
FAILED=0
: > "$SUMMARY"

# step NAME TIMEOUT_S CMD...: run with a timeout (never past the overall deadline), log to $OUT/NAME.log.
step() {
    local name=$1 limit=$2 start rc left
    shift 2
    left=$(( DEADLINE - $(date +%s) ))
    (( limit > left )) && limit=$left
    if (( limit < 5 )); then
        echo "$name: SKIPPED (5-minute budget spent)" | tee -a "$SUMMARY"
        FAILED=1
        return
    fi
    start=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    rc=$?
    if (( rc == 0 )); then
        echo "$name: ok ($(( $(date +%s) - start )) s)" | tee -a "$SUMMARY"
    else
        FAILED=1
        (( rc == 124 )) && rc="timeout after ${limit} s"
        echo "$name: FAILED ($rc, $(( $(date +%s) - start )) s; log: $OUT_DIR/$name.log)" | tee -a "$SUMMARY"
        tail -n 25 "$OUT_DIR/$name.log" | sed 's/^/    /'
    fi
}

step environment 60 "$PY" - <<'EOF'
import importlib, platform, subprocess, sys
print("python", sys.version.split()[0], platform.platform())
for name in ("numpy", "numba", "cupy", "torch", "pytest", "keras", "sklearn", "torchmetrics"):
    try:
        module = importlib.import_module(name)
        print(f"{name:13s} {getattr(module, '__version__', '?')}")
    except Exception as err:  # an absent optional peer is fine; numpy/numba/pytest are not
        print(f"{name:13s} absent ({type(err).__name__})")
        if name in ("numpy", "numba", "pytest"):
            sys.exit(1)
try:
    print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip())
except (OSError, subprocess.SubprocessError) as err:
    print("nvidia-smi:", err)
try:
    import cupy
    print("CUDA devices:", cupy.cuda.runtime.getDeviceCount(), "runtime", cupy.cuda.runtime.runtimeGetVersion())
except Exception as err:
    print("cupy device query:", err)
EOF

if (( DRY )); then
    step syntax 30 bash -n .ci/gpu.sh
    step benchmarks_compile 60 "$PY" -m py_compile benchmarks/*.py
    step gpu_tests_collect 120 "$PY" -m pytest --collect-only -q -m gpu -p cuda_emu.gpu_guard -p no:cacheprovider tests
else
    step gpu_tests 170 "$PY" -m pytest -q -m gpu -rs -p cuda_emu.gpu_guard -p no:cacheprovider \
        --junitxml="$OUT_DIR/gpu_tests.xml" tests
    [[ -f "$OUT_DIR/sync_guard.txt" ]] && sed 's/^/  /' "$OUT_DIR/sync_guard.txt" | tee -a "$SUMMARY"
    for bench in benchmarks/bench_*.py; do
        step "$(basename "$bench" .py)" 45 "$PY" "$bench" --quick
    done
fi

echo "total: $(( $(date +%s) - DEADLINE + ${GPU_SH_BUDGET_S:-285} )) s; $([[ $FAILED == 0 ]] && echo PASSED || echo FAILED)" \
    | tee -a "$SUMMARY"
exit $FAILED
