"""Mutants of the real kernels must fail the emulated tests: the emulation is only worth trusting if it catches
the bugs that matter on a GPU.

For every kernels/<op>.cu, mutants are made from the text CuPy would compile (includes expanded):

* ``barrier``: one ``__syncthreads();`` removed (each one in turn, those of gm_common.cuh included);
* ``bound``:   one loop bound of a per-thread loop shifted by one (``i < n`` -> ``i <= n``: each ``for`` loop
  whose start depends on threadIdx/blockIdx, and the GM_GRID_STRIDE_LOOP macro where the op uses it).

Each mutant is built (only the instantiations its workload launches) and run through the real launcher and
metric code on small inputs, with the block size, flush interval and shared-memory budget shrunk so that the
multi-block, flush and global-atomics paths run. It is caught when a launch fails (deadlock, out-of-bounds
write to global or shared memory, ...) or the result differs from the Numba path's on the same data.
A missing barrier is a race whose outcome depends on scheduling, so a mutant gets up to three runs.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import gpumetrics as gm
from gpumetrics._cuda import _loader, _runtime

cuda_emu = pytest.importorskip("cuda_emu")

pytestmark = pytest.mark.slow


def _metric(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(f"gpumetrics.metrics.{module}"), name)


def _host(value):
    return value.get() if hasattr(value, "get") and not isinstance(value, np.ndarray) else np.asarray(value)


def _stream(metric, batches, to):
    for batch in batches:
        metric.update_state(*[to(x) if isinstance(x, np.ndarray) else x for x in batch])
    return _host(metric.result())


def _rng(seed=0):
    return np.random.default_rng(seed)


def _binary(n, weighted=False, seed=0):
    r = _rng(seed)
    y = (r.random(n) < 0.4).astype(np.float32)
    p = r.random(n).astype(np.float32)
    w = r.random(n).astype(np.float32) if weighted else None
    return [(y[: n // 3], p[: n // 3], None if w is None else w[: n // 3]),
            (y[n // 3:], p[n // 3:], None if w is None else w[n // 3:])]


def _classes(n, c, seed=0, weighted=False):
    r = _rng(seed)
    t = r.integers(0, c, n).astype(np.uint8)
    p = r.integers(0, c, n).astype(np.uint8)
    w = r.random(n).astype(np.float32) if weighted else None
    return [(t, p, w), (t[: n // 2], p[: n // 2], None if w is None else w[: n // 2])]


def _one_hot(n, c, seed=0):
    r = _rng(seed)
    y = np.eye(c, dtype=np.float32)[r.integers(0, c, n)]
    p = r.random((n, c)).astype(np.float32)
    return [(y, p), (y[: n // 2], p[: n // 2])]


def _values(n, seed=0):
    r = _rng(seed)
    return [(r.standard_normal(n).astype(np.float32), r.standard_normal(n).astype(np.float32))]


# op -> workloads: (metric factory, batches) run on numpy (the Numba path, the reference) and on emulated
# device arrays. Sizes above 4 blocks x 64 threads, so grid-stride loops go round and flushes happen.
WORKLOADS = {
    "state_commit": [(lambda: gm.Mean(), [(_rng(1).standard_normal(70).astype(np.float32),
                                           _rng(2).random(70).astype(np.float32))] * 3)],
    "threshold_histogram": [
        (lambda: _metric("threshold", "AUC")(num_thresholds=20), _binary(300)),
        (lambda: _metric("threshold", "AUC")(num_thresholds=9), _binary(300, weighted=True, seed=1)),
        (lambda: _metric("threshold", "Precision")(thresholds=[0.1, 0.35, 0.5, 0.9]), _binary(290, seed=2)),
    ],
    "confusion_matrix": [
        (lambda: _metric("confusion_matrix", "ConfusionMatrix")(3), _classes(600, 3)),
        (lambda: _metric("iou", "MeanIoU")(num_classes=4), _classes(280, 4, seed=3, weighted=True)),
    ],
    "class_sums": [(lambda: _metric("f_score", "F1Score")(average=None, threshold=0.5), _one_hot(150, 4))],
    "class_match": [(lambda: gm.CategoricalAccuracy(), _one_hot(300, 4))],
    "elementwise_sum": [(lambda: gm.MeanAbsoluteError(), _values(300))],
}


@dataclasses.dataclass(frozen=True)
class Mutant:
    op: str
    kind: str
    where: str
    text: str
    line: str = ""  # the original source line, stripped

    def __str__(self):
        return f"{self.op}:{self.kind}@{self.where}"


def _where(text: str, pos: int) -> str:
    """file:line of offset ``pos`` in a loader text (which carries #line markers)."""
    last = None
    for m in re.finditer(r'^#line (\d+) "([^"]+)"\n', text[:pos], re.MULTILINE):
        last = m
    if last is None:
        return f"?:{text.count(chr(10), 0, pos) + 1}"
    return f"{last.group(2)}:{int(last.group(1)) + text.count(chr(10), last.end(), pos)}"


_BARRIER = re.compile(r"__syncthreads\s*\(\s*\)\s*;")
_LOOP = re.compile(r"for\s*\(([^;]*(?:threadIdx|blockIdx)[^;]*);\s*(\w+)\s*(<)\s*([^;]+);")
_MACRO = re.compile(r"(#define\s+GM_GRID_STRIDE_LOOP\b[^\n]*(?:\\\n[^\n]*)*?\bi\s*)<(\s*\(n\))")


_FUNCTION = re.compile(r"\b(\w+)\s*\([^;{}()]*\)\s*\{")


def _used(op: str, text: str, pos: int, own: str) -> bool:
    """A site in the op's own file, or in a shared helper (gm_common.cuh) that the op's file calls."""
    if _where(text, pos).startswith(f"{op}.cu:"):
        return True
    names = [m.group(1) for m in _FUNCTION.finditer(text, 0, pos)]
    return bool(names) and re.search(rf"\b{names[-1]}\s*\(", own) is not None


def _line(text: str, pos: int) -> str:
    return text[text.rfind("\n", 0, pos) + 1:text.find("\n", pos)].strip()


def mutants(op: str) -> list[Mutant]:
    text = _loader.kernel_source(op)
    own = (_loader.kernel_dir() / f"{op}.cu").read_text()
    out = [Mutant(op, "barrier", _where(text, m.start()), text[:m.start()] + "/* mutant: no barrier */;" +
                  text[m.end():], _line(text, m.start())) for m in _BARRIER.finditer(text)
           if _used(op, text, m.start(), own)]
    out += [Mutant(op, "bound", _where(text, m.start()), text[:m.start(3)] + "<=" + text[m.end(3):],
                   _line(text, m.start())) for m in _LOOP.finditer(text)
            if _used(op, text, m.start(), own) and "#define" not in text[text.rfind("\n", 0, m.start()) - 60:m.start()]]
    m = _MACRO.search(text)
    if m and "GM_GRID_STRIDE_LOOP(" in own:
        out.append(Mutant(op, "bound", "GM_GRID_STRIDE_LOOP", text[:m.end(1)] + "<=" + text[m.start(2):],
                          "GM_GRID_STRIDE_LOOP"))
    return out


# Mutants that cannot change any result (equivalent mutants), by op and original line. They are expected to
# survive (xfail, strict: if one is ever caught, the kernel changed and the entry should go).
EQUIVALENT = {
    ("confusion_matrix", "for (gm_i64 first = (gm_i64)blockIdx.x * blockDim.x; first < n; first += stride) {"):
        "outer loop over pixel groups; each pixel re-checks p < n, so one more pass adds nothing",
}


CASES = [m for op in _loader.ops() for m in mutants(op)]


def _shrink(monkeypatch, shared: bool):
    """Flush as often as possible; with shared=False, force the global-atomics paths (no shared-memory budget)."""
    import importlib

    for op in _loader.ops():
        module = importlib.import_module(f"gpumetrics._cuda.{op}")
        for name, value in vars(module).items():
            if not name.isupper() or not isinstance(value, int) or isinstance(value, bool):
                continue
            if "FLUSH" in name:
                monkeypatch.setattr(module, name, 1)  # flush after every grid-stride step
            elif "SHARED" in name and not shared:
                monkeypatch.setattr(module, name, 0)


def _run_all(op, to) -> list:
    return [_stream(factory(), batches, to) for factory, batches in WORKLOADS[op]]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(np.shape(x) == np.shape(y) and np.allclose(x, y, rtol=1e-6, atol=1e-9,
                                                                               equal_nan=True)
                                    for x, y in zip(a, b))


_baselines: dict = {}


def _baseline(op, emulated_cuda, monkeypatch, shared):
    """(Numba reference, instantiations launched) for ``op``'s workloads; the unmutated kernels must match."""
    key = (op, shared)
    if key not in _baselines:
        _shrink(monkeypatch, shared)
        reference = _run_all(op, lambda x: x)
        emulated_cuda.launches.clear()
        got = _run_all(op, cuda_emu.to_device)
        assert _same(got, reference), f"{op}: the unmutated kernel differs from the Numba path"
        names = tuple(dict.fromkeys(r.kernel for r in emulated_cuda.launches if r.op == op))
        assert names, f"{op}: the workload launched no {op} kernel"
        _baselines[key] = (reference, names)
    return _baselines[key]


def test_every_op_with_a_kernel_has_a_workload():
    missing = [op for op in _loader.ops() if op not in WORKLOADS]
    assert not missing, f"add a workload for {missing} to tests/test_mutants.py"


def test_there_are_mutants_of_the_histogram_kernels():
    kinds = {(m.op, m.kind) for m in CASES}
    assert ("state_commit", "bound") in kinds
    for op in ("threshold_histogram", "confusion_matrix"):
        if op in _loader.ops():
            assert {(op, "barrier"), (op, "bound")} <= kinds, kinds


@pytest.mark.parametrize("mutant", CASES, ids=str)
def test_mutant_is_caught(mutant, emulated_cuda, monkeypatch, request):
    if mutant.op not in WORKLOADS:
        pytest.skip(f"no workload for {mutant.op}")
    reason = EQUIVALENT.get((mutant.op, mutant.line))
    if reason:
        request.node.add_marker(pytest.mark.xfail(strict=True, reason=f"equivalent mutant: {reason}"))
    names = {}
    for shared in (True, False):
        reference, names[shared] = _baseline(mutant.op, emulated_cuda, monkeypatch, shared)
        _shrink(monkeypatch, shared)
        runtime = cuda_emu.EmuRuntime(multiprocessor_count=emulated_cuda.multiprocessor_count(),
                                      sources={mutant.op: mutant.text}, kernel_names={mutant.op: names[shared]})
        previous = _runtime.set_runtime(runtime)
        try:
            for _ in range(3):
                try:
                    got = _run_all(mutant.op, cuda_emu.to_device)
                except (cuda_emu.EmuLaunchError, gm.InvalidInputError):
                    return  # caught: the launch failed or the kernel counted garbage as invalid input
                if not _same(got, reference):
                    return  # caught: wrong result
        finally:
            _runtime.set_runtime(previous)
    if mutant.kind == "barrier" and not reason:
        # A missing barrier is a race that may not show in a few runs; ThreadSanitizer sees it whether or not
        # it changes the result. (Skipped when the whole test process already runs under a sanitizer.)
        report = _race_report(mutant, names)
        if report:
            return
    pytest.fail(f"mutant {mutant} survived: every run gave the Numba path's result"
                + (" and ThreadSanitizer reported no race" if mutant.kind == "barrier" else ""))


def _race_report(mutant: Mutant, names: dict) -> str | None:
    """Run the mutant's workload once in a child process with the kernels built under TSan."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    if os.environ.get("CUDA_EMU_SANITIZE"):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"op": mutant.op, "text": mutant.text, "names": {str(k): v for k, v in names.items()}}, f)
    try:
        env = cuda_emu.sanitizer_env("thread")
        env["PYTHONPATH"] = os.pathsep.join([str(_ROOT), str(_ROOT / "tests")])
        r = subprocess.run([sys.executable, __file__, f.name], env=env, capture_output=True, text=True,
                           timeout=600, cwd=_ROOT)
    finally:
        os.unlink(f.name)
    if r.returncode != 0 and "ThreadSanitizer" in r.stderr:
        return next((ln for ln in r.stderr.splitlines() if ln.startswith("SUMMARY")), "race reported")
    assert r.returncode == 0, f"TSan child failed without a race report:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return None


_ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def _child(payload: str) -> None:
    """Entry of the TSan child: the emulated setup of tests/conftest.py, then the workload, once per path."""
    import importlib
    import json

    from _pytest.monkeypatch import MonkeyPatch

    from conftest import EMU_BLOCK, EMU_SMS
    from gpumetrics._cuda import _launch

    data = json.loads(open(payload).read())
    mp = MonkeyPatch()
    mp.setattr(_launch, "BLOCKS_PER_SM", 2)
    for op in _loader.ops():
        module = importlib.import_module(f"gpumetrics._cuda.{op}")
        if hasattr(module, "BLOCK"):
            mp.setattr(module, "BLOCK", EMU_BLOCK)
    for shared in (True, False):
        _shrink(mp, shared)
        _runtime.set_runtime(cuda_emu.EmuRuntime(EMU_SMS, sanitize="thread", sources={data["op"]: data["text"]},
                                                 kernel_names={data["op"]: tuple(data["names"][str(shared)])}))
        try:
            _run_all(data["op"], cuda_emu.to_device)
        except (cuda_emu.EmuLaunchError, gm.InvalidInputError) as err:
            print(f"launch failed: {err}")


if __name__ == "__main__":
    import sys

    _child(sys.argv[1])
