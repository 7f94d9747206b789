"""THE dispatch: which device an input lives on, and a zero-copy view of it for that device's kernels.

    numpy arrays, Python lists and scalars, CPU torch tensors    -> "cpu"  (Numba kernels, gpumetrics/_cpu)
    cupy arrays, CUDA torch tensors, any CUDA ``__dlpack__`` or
    ``__cuda_array_interface__`` producer                          -> "cuda" (CUDA kernels, gpumetrics/_cuda)

Array types are recognised by their attributes and by the name of their module, so importing gpumetrics
imports neither cupy nor torch (the array-api-compat approach). Python scalars, lists and 0-d numpy arrays
are device-neutral: they join whatever device the other inputs are on.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from gpumetrics._dtypes import kind_of, raw_view

_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_CUDA_HOST, _DLPACK_CUDA_MANAGED = 1, 2, 3, 13


@dataclass(frozen=True)
class Device:
    """Where state and work live: ``Device("cpu")`` or ``Device("cuda", index)``."""

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


CPU = Device("cpu")


class Array(NamedTuple):
    """An input as a kernel reads it: the backend array (raw view), its element kind, its device."""

    data: Any
    kind: str
    device: Device

    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return len(self.data.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.data.shape, dtype=np.int64))


def _is_torch(x) -> bool:
    return type(x).__module__.split(".", 1)[0] == "torch"


def device_of(x) -> Device | None:
    """Device of one input; ``None`` for device-neutral inputs (None, Python scalars and lists, 0-d numpy)."""
    if x is None or isinstance(x, (bool, int, float, list, tuple, np.generic)):
        return None
    if isinstance(x, np.ndarray):
        return None if x.ndim == 0 else CPU
    if _is_torch(x):
        dev = x.device
        if dev.type == "cpu":
            return CPU
        if dev.type == "cuda":
            return Device("cuda", dev.index or 0)
        raise TypeError(f"torch tensors on {dev.type!r} are not supported (use cpu or cuda tensors)")
    if hasattr(x, "__cuda_array_interface__"):
        return Device("cuda", _runtime().device_id(x))
    if hasattr(x, "__dlpack_device__"):
        dev_type, dev_id = x.__dlpack_device__()
        if int(dev_type) == _DLPACK_CPU:
            return CPU
        if int(dev_type) in (_DLPACK_CUDA, _DLPACK_CUDA_MANAGED):
            return Device("cuda", int(dev_id))
        raise TypeError(f"DLPack device type {int(dev_type)} is not supported (cpu or cuda only)")
    if hasattr(x, "__array__") or hasattr(x, "__array_interface__"):
        return CPU
    raise TypeError(f"cannot use an input of type {type(x).__name__} (expected an array, a tensor or a number)")


def common_device(**inputs) -> Device:
    """The one device all non-neutral inputs share (CPU when all are neutral); ``ValueError`` naming them."""
    found = {name: dev for name, x in inputs.items() if (dev := device_of(x)) is not None}
    devices = set(found.values())
    if len(devices) > 1:
        where = ", ".join(f"{name} on {dev}" for name, dev in found.items())
        raise ValueError(f"inputs are on different devices ({where}); move them to one device first")
    return devices.pop() if devices else CPU


def as_array(x, device: Device, name: str) -> Array:
    """Zero-copy view of ``x`` on ``device`` (a copy only for Python lists/scalars and numpy -> device).

    Tensors that require grad are detached. On the GPU the import runs on the caller's current stream
    (CuPy's current stream, or torch's current stream for torch tensors; see gpumetrics._cuda._runtime).
    bfloat16 tensors arrive as their raw 16-bit words, since numpy (and older CuPy) have no bfloat16.
    """
    if _is_torch(x):
        x = x.detach()
        if str(x.dtype) == "torch.bfloat16":
            import torch  # noqa: PLC0415  (only reached with a torch tensor in hand)

            words = x.view(torch.int16)
            data = words.numpy() if device.kind == "cpu" else _runtime().import_array(words, device)
            return Array(data.view(np.uint16), "bf2", device)
    if device.kind == "cpu":
        data = x.numpy() if _is_torch(x) else _to_numpy(x, name)
    elif device_of(x) is None:  # a scalar or list joining device inputs: one tiny host-to-device copy
        data = _runtime().xp.asarray(_to_numpy(x, name))
    else:
        data = _runtime().import_array(x, device)
    try:
        kind = kind_of(data.dtype)
    except TypeError as err:
        raise TypeError(f"{name}: {err}") from None
    return Array(raw_view(data, kind), kind, device)


def _to_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, (list, tuple)) or np.isscalar(x):
        return _python_to_numpy(x, name)
    return np.asarray(x)


def _python_to_numpy(x, name: str) -> np.ndarray:
    """Keras' conversion of Python data: ints -> int32, floats -> float32, bools -> bool."""
    arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name}: nested lists of unequal length or non-numeric values")
    if arr.dtype.kind == "i":
        return arr.astype(np.int32) if arr.size == 0 or np.abs(arr).max() < 2**31 else arr
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    return arr


def _runtime():
    return importlib.import_module("gpumetrics._cuda._runtime").get_runtime()


def op(device: Device, name: str):
    """Function ``name`` of the backend for ``device``: ``gpumetrics._cpu.<name>.<name>`` or ``_cuda``'s twin."""
    package = "gpumetrics._cpu" if device.kind == "cpu" else "gpumetrics._cuda"
    return getattr(importlib.import_module(f"{package}.{name}"), name)


def array_module_of(*arrays):
    """The array module (numpy or cupy) that a metric's own code should use for these inputs.

    For custom metrics: ``xp = gm.xp(y_true, y_pred)`` then ``xp.asarray(y_true)`` stays on the device.
    """
    device = common_device(**{f"input {i}": a for i, a in enumerate(arrays)})
    if device.kind == "cpu":
        return np
    return _runtime().xp
