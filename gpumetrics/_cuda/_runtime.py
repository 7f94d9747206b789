"""The GPU as the launchers see it: an array module, compiled kernels, devices and streams.

Launchers in ``gpumetrics/_cuda`` never import CuPy themselves; they ask ``get_runtime()``. On a machine with
a GPU that is :class:`CupyRuntime`. The test suite installs its CPU emulation of CUDA with ``set_runtime()``,
so the same launcher code (grid sizes, argument types, shared-memory sizes) runs in CI without a GPU.

A runtime provides:

``xp``                          array module for state and scratch (``cupy``)
``device_id(x)``                device ordinal of a CUDA array
``import_array(x, device)``     zero-copy device array of ``x`` (``__cuda_array_interface__`` or DLPack)
``kernel(op, name)``            compiled kernel ``name`` of ``kernels/<op>.cu`` for the current device,
                                called as ``k(grid, block, args, shared_mem=bytes)``
``multiprocessor_count()``      SMs of the current device (grid sizing)
``use_device(device)``          context: make ``device`` current
``use_stream_of(inputs)``       context: run on the inputs' stream (torch's current stream for torch tensors)
``to_host(array)``              numpy copy (synchronises; only ``result()`` and state export call it)
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np

from gpumetrics._cuda import _loader

_installed = None

INSTALL_HINT = ("CUDA inputs need CuPy: pip install 'gpumetrics[cuda12]' (or 'gpumetrics[cuda13]' for CUDA 13)")


def get_runtime():
    """The active runtime (CuPy unless a test installed another); ``ImportError`` if CuPy is missing."""
    global _installed
    if _installed is None:
        _installed = CupyRuntime()
    return _installed


def set_runtime(runtime):
    """Install ``runtime`` (``None`` restores CuPy); returns the previous one. For tests."""
    global _installed
    previous, _installed = _installed, runtime
    return previous


class CupyRuntime:
    name = "cupy"

    def __init__(self):
        try:
            import cupy  # noqa: PLC0415  (imported only when a CUDA input arrives)
        except ImportError as err:
            raise ImportError(INSTALL_HINT) from err
        self.xp = cupy
        self._modules: dict[tuple[str, int], object] = {}

    def device_id(self, x) -> int:
        if isinstance(x, self.xp.ndarray):
            return x.device.id
        ptr = x.__cuda_array_interface__["data"][0]
        return self.xp.cuda.runtime.pointerGetAttributes(ptr).device

    def import_array(self, x, device):
        cupy = self.xp
        with cupy.cuda.Device(device.index):
            if isinstance(x, cupy.ndarray):
                return x
            if type(x).__module__.split(".", 1)[0] == "torch" or not hasattr(x, "__cuda_array_interface__"):
                return cupy.from_dlpack(x)  # passes CuPy's current stream to the producer
            return cupy.asarray(x)

    def kernel(self, op: str, name: str):
        device = self.xp.cuda.Device().id
        key = (op, device)
        module = self._modules.get(key)
        if module is None:
            module = self.xp.RawModule(code=_loader.kernel_source(op), options=_loader.COMPILE_OPTIONS,
                                       name_expressions=_loader.kernel_names(op))
            self._modules[key] = module
        return module.get_function(name)

    @functools.lru_cache(maxsize=None)  # noqa: B019  (one runtime per process)
    def _sm_count(self, device: int) -> int:
        return self.xp.cuda.runtime.getDeviceProperties(device)["multiProcessorCount"]

    def multiprocessor_count(self) -> int:
        return self._sm_count(self.xp.cuda.Device().id)

    def use_device(self, device):
        return self.xp.cuda.Device(device.index)

    def use_stream_of(self, inputs):
        for x in inputs:
            if type(x).__module__.split(".", 1)[0] == "torch" and x.is_cuda:
                import torch  # noqa: PLC0415

                stream = torch.cuda.current_stream(x.device)
                return self.xp.cuda.ExternalStream(stream.cuda_stream, x.device.index or 0)
        return contextlib.nullcontext()

    def to_host(self, array) -> np.ndarray:
        return self.xp.asnumpy(array)
