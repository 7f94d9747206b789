"""One test body for every backend: the ``backend`` fixture turns numpy test data into the backend's arrays.

Backends: ``numpy`` and ``torch`` (CPU, Numba kernels), ``emu`` (the CUDA launchers and the real
``kernels/*.cu`` run under the project's CPU emulation of CUDA, tests/cuda_emu), and, with the ``gpu`` marker,
``cupy`` and ``torch_cuda`` on a real device (skipped without one).
"""
from __future__ import annotations

import importlib
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras is the reference; its CPU torch backend runs here

import numpy as np
import pytest

from gpumetrics._cuda import _loader

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Under emulation every launcher's block size is shrunk so that multi-block and tail paths run on tiny inputs.
EMU_BLOCK = 64
EMU_SMS = 2


def _cuda_device_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


class Backend:
    """How a test hands data to gpumetrics on one backend, and reads results back."""

    def __init__(self, name: str):
        self.name = name
        self.is_cuda = name in ("emu", "cupy", "torch_cuda")

    def __repr__(self):
        return self.name

    def to(self, x):
        """numpy test data -> this backend's array type (None and Python scalars pass through)."""
        if x is None or not isinstance(x, np.ndarray):
            return x
        if self.name == "numpy":
            return x
        if self.name == "torch":
            import torch

            return torch.from_numpy(np.ascontiguousarray(x)) if x.dtype != np.uint16 else torch.from_numpy(x)
        if self.name == "emu":
            from cuda_emu import to_device

            return to_device(x)
        if self.name == "cupy":
            import cupy

            return cupy.asarray(x)
        if self.name == "torch_cuda":
            import torch

            return torch.from_numpy(np.ascontiguousarray(x)).cuda()
        raise AssertionError(self.name)

    @staticmethod
    def host(value) -> np.ndarray:
        """A result (numpy, cupy or emulated device array) as numpy."""
        if hasattr(value, "get") and not isinstance(value, np.ndarray):
            return value.get()
        return np.asarray(value)


def _launcher_modules():
    return [importlib.import_module(f"gpumetrics._cuda.{op}") for op in _loader.ops()]


@pytest.fixture
def emulated_cuda(monkeypatch):
    """Install the CPU emulation of CUDA as the runtime, with shrunk block sizes; restore afterwards."""
    cuda_emu = pytest.importorskip("cuda_emu")
    from gpumetrics._cuda import _launch, _runtime

    runtime = cuda_emu.EmuRuntime(multiprocessor_count=EMU_SMS)
    previous = _runtime.set_runtime(runtime)
    cuda_emu.guard_metric_updates(monkeypatch)  # any host read of a device array in update_state raises
    monkeypatch.setattr(_launch, "BLOCKS_PER_SM", 2)
    for module in _launcher_modules():
        if hasattr(module, "BLOCK"):
            monkeypatch.setattr(module, "BLOCK", EMU_BLOCK)
    try:
        yield runtime
    finally:
        _runtime.set_runtime(previous)


BACKENDS = [
    "numpy",
    "torch",
    "emu",
    pytest.param("cupy", marks=pytest.mark.gpu),
    pytest.param("torch_cuda", marks=pytest.mark.gpu),
]


@pytest.fixture(params=BACKENDS)
def backend(request):
    name = request.param
    if name == "torch":
        pytest.importorskip("torch")
    if name in ("cupy", "torch_cuda") and not _cuda_device_available():
        pytest.skip("no CUDA device")
    if name == "torch_cuda":
        pytest.importorskip("torch")
    if name == "emu":
        request.getfixturevalue("emulated_cuda")
    return Backend(name)


def pytest_collection_modifyitems(config, items):
    if not _cuda_device_available():
        skip = pytest.mark.skip(reason="no CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
