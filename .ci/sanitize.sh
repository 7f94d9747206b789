#!/usr/bin/env bash
# Layer 2b of the kernel verification: the emulated CUDA tests again, with every kernel (and the emulator)
# built under ThreadSanitizer (data races: a missing __syncthreads/__syncwarp inside a block) and then under
# AddressSanitizer (out-of-bounds reads and writes of global and shared memory, use after free).
#
#   bash .ci/sanitize.sh                  # thread, then address
#   bash .ci/sanitize.sh address          # one of them
#   PYTEST_ARGS="tests/test_emulator.py" bash .ci/sanitize.sh thread
#
# Each run is a fresh Python process started with the sanitizer runtime preloaded
# (cuda_emu.sanitizer_env); CUDA_EMU_SANITIZE makes EmuRuntime build sanitized modules (cached separately).
# Selected: every test that runs on the emulated backend ("emu" in its id) and the emulator's self-tests;
# not the mutation tests (their mutants race on purpose). A sanitizer report aborts the run: exit non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
KINDS=${*:-thread address}
if [[ -n "${PYTEST_ARGS:-}" ]]; then
    eval "ARGS=($PYTEST_ARGS)"
else
    ARGS=(tests -k "emu" --ignore=tests/test_mutants.py -m "not gpu and not slow")
fi
status=0
for kind in $KINDS; do
    echo "=== cuda_emu sanitize=$kind: pytest ${ARGS[*]}"
    start=$(date +%s)
    if ! "$PY" - "$kind" "${ARGS[@]}" <<'EOF'
import os, sys
sys.path[:0] = [".", "tests"]
from cuda_emu import sanitizer_env
kind, args = sys.argv[1], sys.argv[2:]
env = sanitizer_env(kind)
env["PYTHONPATH"] = os.pathsep.join([".", "tests", env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
env.setdefault("CUDA_EMU_TIMEOUT_MS", "120000")  # sanitized threads run several times slower
# --capture=sys: a sanitizer writes its report to file descriptor 2 and aborts; pytest must not swallow it.
cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--capture=sys", *args]
os.execvpe(cmd[0], cmd, env)
EOF
    then
        echo "=== sanitize=$kind FAILED"
        status=1
    else
        echo "=== sanitize=$kind passed in $(( $(date +%s) - start )) s"
    fi
done
exit $status
