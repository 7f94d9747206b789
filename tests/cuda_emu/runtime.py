"""EmuRuntime: the runtime protocol of gpumetrics/_cuda/_runtime.py, backed by the CPU emulation of CUDA.

Installed by the test suite with ``_runtime.set_runtime(EmuRuntime())`` (tests/conftest.py, fixture
``emulated_cuda``), so the launchers in gpumetrics/_cuda run unchanged: they ask for ``kernel(op, name)``,
size grids from ``multiprocessor_count()``, allocate with ``xp`` and pass device arrays and numpy scalars.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from dataclasses import dataclass

import numpy as np

from cuda_emu.build import EmuModule
from cuda_emu.device import EmuDeviceArray, check_host_read, from_cuda_array_interface, xp


@dataclass(frozen=True)
class Launch:
    """One kernel launch as the launcher configured it (for tests that check launch shapes)."""

    op: str
    kernel: str
    grid: tuple
    block: tuple
    shared_mem: int


@functools.lru_cache(maxsize=64)
def _module(source: str, names: tuple, name: str, sanitize: str | None, options: tuple) -> EmuModule:
    return EmuModule(source, names, name=name, options=options, sanitize=sanitize)


def build_op(op: str, source: str | None = None, sanitize: str | None = None, names=None) -> EmuModule:
    """The emulated module of ``kernels/<op>.cu`` with every name of the launcher's ``KERNELS``.

    ``source`` replaces the file's text and ``names`` the registry (mutation tests build one instantiation).
    """
    from gpumetrics._cuda import _loader  # noqa: PLC0415

    text = _loader.kernel_source(op) if source is None else source
    names = tuple(_loader.kernel_names(op) if names is None else names)
    return _module(text, names, f"{op}.cu", sanitize, tuple(_loader.COMPILE_OPTIONS))


class EmuRuntime:
    """CPU emulation of the CUDA runtime for gpumetrics' launchers.

    Parameters
    ----------
    multiprocessor_count : int
        SMs the launchers see (grid sizing); small, so grids of a few blocks run on small inputs.
    sanitize : {None, "thread", "address"}
        Build kernels with TSan / ASan (default: ``$CUDA_EMU_SANITIZE``).
    sources : dict, optional
        ``{op: CUDA source text}`` used instead of ``kernels/<op>.cu`` (mutation tests).
    kernel_names : dict, optional
        ``{op: names}`` compiled instead of the launcher's whole ``KERNELS`` (faster builds of mutants).
    """

    name = "emu"

    def __init__(self, multiprocessor_count: int = 2, sanitize: str | None = None, sources: dict | None = None,
                 kernel_names: dict | None = None):
        self.xp = xp
        self._sm = int(multiprocessor_count)
        self.sanitize = sanitize if sanitize is not None else (os.environ.get("CUDA_EMU_SANITIZE") or None)
        self.sources: dict[str, str] = dict(sources or {})
        self.kernel_names: dict[str, tuple] = dict(kernel_names or {})
        self.launches: list[Launch] = []

    # ------------------------------------------------------------ devices and arrays
    def device_id(self, x) -> int:
        if not hasattr(x, "__cuda_array_interface__"):
            raise TypeError(f"{type(x).__name__} is not a CUDA array")
        return 0

    def import_array(self, x, device):
        if getattr(device, "index", 0) != 0:
            raise ValueError(f"the emulated runtime has one device (0), not {device}")
        if isinstance(x, EmuDeviceArray):
            return x
        if hasattr(x, "__cuda_array_interface__"):
            return from_cuda_array_interface(x)
        raise TypeError(f"cannot import {type(x).__name__} as an emulated device array")

    def multiprocessor_count(self) -> int:
        return self._sm

    @contextlib.contextmanager
    def use_device(self, device):
        if getattr(device, "index", 0) != 0:
            raise ValueError(f"the emulated runtime has one device (0), not {device}")
        yield

    def use_stream_of(self, inputs):
        return contextlib.nullcontext()

    def to_host(self, array) -> np.ndarray:
        if isinstance(array, EmuDeviceArray):
            return array.get()
        if isinstance(array, np.ndarray):
            return array
        check_host_read("to_host()")
        return np.array(from_cuda_array_interface(array)._a)

    # ------------------------------------------------------------ kernels
    def module(self, op: str) -> EmuModule:
        return build_op(op, self.sources.get(op), self.sanitize, self.kernel_names.get(op))

    def kernel(self, op: str, name: str):
        kernel = self.module(op).get_function(name)
        return functools.partial(self._launch, op, kernel)

    def _launch(self, op, kernel, grid, block, args, shared_mem=0, **kwargs):
        record = Launch(op, kernel.name, tuple(grid) if isinstance(grid, tuple) else (grid,),
                        tuple(block) if isinstance(block, tuple) else (block,), int(shared_mem))
        kernel(grid, block, args, shared_mem=shared_mem, **kwargs)
        self.launches.append(record)
        del self.launches[:-1000]

    @staticmethod
    def source_hash(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:12]
