#!/usr/bin/env python
"""CI compile check of the CUDA kernels: every op x every NVRTC installed (12 and 13) x every supported arch.

Compiles each kernels/<op>.cu exactly as CuPy's RawModule does at run time (same text, same name expressions
from the launcher's KERNELS, same options) with NVRTC from PyPI (no GPU needed), prints a per-kernel resource
table (registers per arch, static shared memory, stack, spills) and exits 1 on any compile error, warning
or register spill, printing the compiler's ``file(line): ...`` messages.

    python .ci/nvrtc_check.py                  # everything
    python .ci/nvrtc_check.py --op confusion_matrix --arch 90 --jobs 2
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from cuda_emu import nvrtc  # noqa: E402

from gpumetrics._cuda import _loader  # noqa: E402


def _table(op: str, checks: list, archs: list) -> list[str]:
    """Rows: kernel | registers per arch | smem | stack | spill bytes (max over archs)."""
    names = list(_loader.kernel_names(op))
    width = max(len(n) for n in names)
    head = f"  {'kernel':<{width}}  " + " ".join(f"{'sm_' + a:>6}" for a in archs) + "   smem  stack  spill"
    rows = [head, "  " + "-" * (len(head) - 2)]
    by_arch = {c.arch: c for c in checks}
    for name in names:
        figs = [by_arch[a].resources.get(name) if a in by_arch else None for a in archs]
        regs = " ".join(f"{f['registers']:>6}" if f else f"{'-':>6}" for f in figs)
        present = [f for f in figs if f]
        smem = max((f["smem"] for f in present), default=0)
        stack = max((f["stack"] for f in present), default=0)
        spill = max((f["spill_stores"] + f["spill_loads"] for f in present), default=0)
        flag = "  <-- SPILL" if spill else ""
        rows.append(f"  {name:<{width}}  {regs}  {smem:>5}  {stack:>5}  {spill:>5}{flag}")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--op", action="append", help="op name (repeatable; default: every kernels/*.cu)")
    ap.add_argument("--arch", action="append", help=f"sm number (repeatable; default: {' '.join(nvrtc.ARCHS)})")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compiles")
    a = ap.parse_args(argv)
    ops = a.op or _loader.ops()
    archs = a.arch or list(nvrtc.ARCHS)
    compilers = nvrtc.compilers()
    if not compilers:
        print("FAIL: no libnvrtc found; pip install nvidia-cuda-nvrtc-cu12 nvidia-cuda-nvrtc")
        return 1
    print(f"kernels: {_loader.kernel_dir()}  ops: {', '.join(ops)}")
    print(f"compilers: {', '.join(f'{c!r} ({c.path})' for c in compilers)}")
    print(f"archs: {', '.join('sm_' + x for x in archs)}  options: {' '.join(_loader.COMPILE_OPTIONS)}")
    jobs = [(op, c, arch) for op in ops for c in compilers for arch in archs if arch in c.supported_archs()]
    skipped = [(op, c, arch) for op in ops for c in compilers for arch in archs if arch not in c.supported_archs()]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, a.jobs)) as pool:  # NVRTC runs outside the GIL
        results = list(pool.map(lambda j: nvrtc.check_op(j[0], j[2], j[1]), jobs))
    elapsed = time.perf_counter() - t0

    problems = []
    for c in compilers:
        for op in ops:
            checks = [r for r in results if r.op == op and r.compiler == repr(c)]
            status = "ok" if all(r.ok for r in checks) else "FAIL"
            print(f"\n{op}.cu  {c!r}  {len(_loader.kernel_names(op))} kernel(s)  {status}")
            if any(r.error is None for r in checks):
                print("\n".join(_table(op, [r for r in checks if r.error is None], archs)))
            for r in checks:
                problems += r.problems()
    for op, c, arch in skipped:
        print(f"note: {c!r} does not support sm_{arch}; {op} not compiled for it there")
    print(f"\n{len(jobs)} compiles in {elapsed:.1f} s")
    if problems:
        print(f"\nFAIL: {len(problems)} problem(s)")
        for p in dict.fromkeys(problems):
            print(p.rstrip())
        return 1
    print("OK: every kernel compiles without warnings or spills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
