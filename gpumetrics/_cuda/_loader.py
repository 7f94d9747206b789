"""Finds the CUDA sources and says how they are compiled; the same text feeds CuPy, NVRTC checks and the emulator.

Kernel sources live in ``kernels/`` of a checkout and in ``gpumetrics/_kernels`` of an installed wheel;
``GPUMETRICS_KERNEL_DIR`` overrides both. ``#include "x.cuh"`` lines are expanded here from the same folder,
so every consumer (CuPy's RawModule, the NVRTC compile check, the CPU emulation) reads one self-contained
text and no compiler needs an include path.

Each op ``<op>`` has ``kernels/<op>.cu`` and a launcher ``gpumetrics/_cuda/<op>.py`` whose ``KERNELS`` tuple
lists every kernel name (template instantiations spelled as name expressions). That tuple is the one registry
of instantiations: the launcher draws from it, and the compile check compiles all of it.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
from pathlib import Path

# The options CuPy's RawModule uses with NVRTC (plus ours); the compile check passes exactly these.
COMPILE_OPTIONS = ("-std=c++17", "--device-as-default-execution-space", "-ftz=true")

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.MULTILINE)


def kernel_dir() -> Path:
    """Folder that holds the ``.cu`` sources (env override, installed wheel, or checkout)."""
    env = os.environ.get("GPUMETRICS_KERNEL_DIR")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_kernels", package.parent / "kernels"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no CUDA kernel sources next to {package} (set GPUMETRICS_KERNEL_DIR)")


def ops() -> list[str]:
    """Every op that has a kernel file."""
    return sorted(p.stem for p in kernel_dir().glob("*.cu"))


@functools.lru_cache(maxsize=None)
def kernel_source(op: str) -> str:
    """Text of ``kernels/<op>.cu`` with project-local includes expanded (each at most once)."""
    folder = kernel_dir()
    seen: set[str] = set()

    def expand(name: str) -> str:
        text = (folder / name).read_text()

        def include(m: re.Match) -> str:
            dep = m.group(1)
            if dep in seen:
                return ""
            seen.add(dep)
            after = text.count("\n", 0, m.end()) + 1  # line of the text after the match: messages keep file(line)
            return f'#line 1 "{dep}"\n' + expand(dep) + f'\n#line {after} "{name}"\n'

        return _INCLUDE.sub(include, text)

    return f'#line 1 "{op}.cu"\n' + expand(f"{op}.cu")


def kernel_names(op: str) -> tuple[str, ...]:
    """The registry of kernel names (with template arguments) that the launcher of ``op`` uses."""
    return tuple(importlib.import_module(f"gpumetrics._cuda.{op}").KERNELS)
