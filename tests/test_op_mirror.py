"""Every op is three files that mirror each other: kernels/<op>.cu, gpumetrics/_cuda/<op>.py (launcher) and
gpumetrics/_cpu/<op>.py (Numba), exposing one function ``<op>`` with the same signature; the launcher's
``KERNELS`` registry is what CuPy, the NVRTC check and the emulator compile, so every entry must build.
"""
from __future__ import annotations

import importlib
import inspect
import re

import pytest

from gpumetrics._cuda import _loader

OPS = _loader.ops()


def test_there_are_ops():
    assert "state_commit" in OPS


@pytest.mark.parametrize("op", OPS)
def test_cuda_and_cpu_functions_mirror_each_other(op):
    cuda = importlib.import_module(f"gpumetrics._cuda.{op}")
    cpu = importlib.import_module(f"gpumetrics._cpu.{op}")
    for module in (cuda, cpu):
        assert callable(getattr(module, op, None)), f"{module.__name__} must define {op}()"
    assert inspect.signature(getattr(cuda, op)) == inspect.signature(getattr(cpu, op)), (
        f"{op}: gpumetrics/_cuda/{op}.py{inspect.signature(getattr(cuda, op))} != "
        f"gpumetrics/_cpu/{op}.py{inspect.signature(getattr(cpu, op))}")


@pytest.mark.parametrize("op", OPS)
def test_launcher_declares_its_registry_and_block(op):
    cuda = importlib.import_module(f"gpumetrics._cuda.{op}")
    names = cuda.KERNELS
    assert isinstance(names, tuple) and names and all(isinstance(n, str) for n in names)
    assert len(set(names)) == len(names), f"{op}: duplicate KERNELS entries"
    block = getattr(cuda, "BLOCK", None)
    assert isinstance(block, int) and block % 32 == 0 and 32 <= block <= 1024, f"{op}: BLOCK={block!r}"


@pytest.mark.parametrize("op", OPS)
def test_kernel_source_follows_the_contract(op):
    """kernels/README.md: self-contained text, only "gm_common.cuh" included, no inline asm."""
    raw = (_loader.kernel_dir() / f"{op}.cu").read_text()
    includes = re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', raw, re.MULTILINE)
    assert set(includes) <= {"gm_common.cuh"}, f"{op}.cu includes {includes}"
    assert not re.search(r"\basm\s*(volatile\s*)?\(", raw), f"{op}.cu uses inline asm (the emulator cannot run it)"
    text = _loader.kernel_source(op)
    for name in cuda_names(op):
        base = name.split("<", 1)[0]
        assert re.search(rf"__global__\s+void\s+{base}\s*\(", text), f"{op}.cu has no __global__ {base}()"


@pytest.mark.parametrize("op", OPS)
def test_expanded_source_keeps_file_and_line(op):
    """Compiler and emulator messages name kernels/<op>.cu lines, also after the expanded gm_common.cuh."""
    raw = (_loader.kernel_dir() / f"{op}.cu").read_text().splitlines()
    text = _loader.kernel_source(op)
    for number in (len(raw), max(i for i, line in enumerate(raw, 1) if "__global__" in line)):
        line = raw[number - 1]
        if not line.strip() or text.count(line + "\n") != 1:
            continue
        pos = text.index(line + "\n")
        marks = list(re.finditer(r'^#line (\d+) "([^"]+)"\n', text[:pos], re.MULTILINE))
        last = marks[-1]
        got = (last.group(2), int(last.group(1)) + text.count("\n", last.end(), pos))
        assert got == (f"{op}.cu", number), f"{line!r} is reported as {got}"


def cuda_names(op):
    return _loader.kernel_names(op)


@pytest.mark.parametrize("op", OPS)
def test_every_registered_kernel_builds_under_the_emulator(op):
    cuda_emu = pytest.importorskip("cuda_emu")
    module = cuda_emu.build_op(op)
    for name in cuda_names(op):
        kernel = module.get_function(name)
        assert kernel.param_codes, f"{name}: no parameters exported"
