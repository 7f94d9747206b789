"""Layer 1 of the kernel verification: every kernels/<op>.cu compiles with NVRTC (the compiler CuPy uses at run
time, from PyPI) for every supported architecture, with every template instantiation of its launcher's
KERNELS, with CuPy's options, without a warning and without a register spill.

The newest NVRTC installed checks every architecture; older ones (NVRTC 12 beside 13 in CI) check the lowest
and highest. ``.ci/nvrtc_check.py`` runs the full matrix and prints the per-kernel resource table.
"""
from __future__ import annotations

import pytest

from gpumetrics._cuda import _loader

nvrtc = pytest.importorskip("cuda_emu.nvrtc")

COMPILERS = nvrtc.compilers()
CASES = [(op, c, arch) for op in _loader.ops() for i, c in enumerate(COMPILERS)
         for arch in (nvrtc.ARCHS if i == 0 else (nvrtc.ARCHS[0], nvrtc.ARCHS[-1]))]

if not COMPILERS:
    pytestmark = pytest.mark.skip(reason="no libnvrtc (pip install nvidia-cuda-nvrtc-cu12 nvidia-cuda-nvrtc)")


@pytest.mark.parametrize("op,compiler,arch", CASES, ids=[f"{op}-{c!r}-sm_{a}".replace(" ", "")
                                                         for op, c, a in CASES])
def test_kernel_compiles_cleanly(op, compiler, arch):
    check = nvrtc.check_op(op, arch, compiler)
    assert check.ok, "\n".join(check.problems())
    assert set(check.resources) == set(_loader.kernel_names(op))


def test_ci_requires_both_nvrtc_versions():
    import os

    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        assert sorted(c.version[0] for c in COMPILERS)[-2:] == [12, 13], COMPILERS


def test_checker_reports_errors_warnings_and_spills_with_file_and_line():
    compiler = COMPILERS[0]
    bad = '#line 1 "bad.cu"\nextern "C" __global__ void f(float* y) {\n  float unused = 1.0f;\n  y[0] = nope;\n}\n'
    with pytest.raises(nvrtc.NvrtcError, match=r"bad\.cu\(3\): error"):
        compiler.compile(bad, "90", _loader.COMPILE_OPTIONS, "bad.cu")
    warn = '#line 1 "warn.cu"\nextern "C" __global__ void f(float* y) {\n  float unused = 1.0f;\n  y[0] = 1;\n}\n'
    res = compiler.compile(warn, "90", _loader.COMPILE_OPTIONS, "warn.cu")
    assert any("warn.cu(2)" in w for w in res.warnings), res.log
    # A kernel with a large local array indexed at run time lives in local memory: a stack frame; with a
    # register cap ptxas must spill.
    spill = ('extern "C" __global__ void f(float* y, int k) { float a[64];\n'
             ' for (int i = 0; i < 64; ++i) a[i] = y[i * k] * y[i + k];\n'
             ' float s = 0; for (int i = 0; i < 64; ++i) s += a[i] * a[63 - i] + a[(i * 7) & 63];\n y[0] = s; }')
    res = compiler.compile(spill, "90", (*_loader.COMPILE_OPTIONS, "-maxrregcount=16"), "spill.cu")
    assert res.resources["f"]["spill_stores"] > 0, res.log
    check = nvrtc.OpCheck("spill", repr(compiler), "90", warnings=res.warnings, resources=res.resources)
    assert not check.ok and any("spills registers" in p for p in check.problems())
