"""Emulated device memory: an array type that behaves like a CuPy array, and the guard against host reads.

:class:`EmuDeviceArray` holds a numpy buffer (the "device memory") and exposes what CuPy arrays expose:
``__cuda_array_interface__`` (so ``gpumetrics._dispatch`` routes it to the CUDA path), ``.device.id``,
``.get()``, numpy-style attributes, indexing, methods and operators. Results of arithmetic, reductions and
indexing stay on the device (a reduction gives a 0-d device array, as in CuPy). Like CuPy it refuses
implicit conversion to numpy (``np.asarray(x)`` raises ``TypeError``; use ``.get()``) and refuses to mix
with non-scalar numpy arrays in arithmetic.

Host reads (``get``, ``item``, ``tolist``, ``bool()``, ``int()``, ``float()``, ``operator.index``, ``repr``,
``str``, pickling, ``runtime.to_host``) are what synchronise with a real GPU. Inside :func:`no_host_sync`
each of them raises :class:`HostSyncError`; the test suite turns the guard on for every
``Metric.update_state`` run on emulated inputs (:func:`guard_metric_updates`).

``xp`` is the array module the runtime hands to state and scratch code: numpy's API, returning device arrays.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import threading
import types
import weakref

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin


class HostSyncError(RuntimeError):
    """A device array was read on the host where the GPU path must not synchronise."""


_guard = threading.local()


def _scopes() -> list:
    if not hasattr(_guard, "scopes"):
        _guard.scopes = []
    return _guard.scopes


@contextlib.contextmanager
def no_host_sync(scope: str = "no_host_sync()"):
    """Inside, any host read of an emulated device array raises :class:`HostSyncError` (re-entrant)."""
    scopes = _scopes()
    scopes.append(scope)
    try:
        yield
    finally:
        scopes.pop()


@contextlib.contextmanager
def allow_host_sync():
    """Lift the guard inside (for test helpers that inspect device state on purpose)."""
    saved = _scopes()  # the same list object: no_host_sync() pops from it when it exits
    _guard.scopes = []
    try:
        yield
    finally:
        _guard.scopes = saved


def host_sync_forbidden() -> bool:
    return bool(_scopes())


def check_host_read(what: str) -> None:
    scopes = _scopes()
    if scopes:
        raise HostSyncError(f"{what} reads device memory on the host inside {scopes[-1]}; on a GPU this "
                            f"synchronises the stream (keep values on the device: count invalid values in the "
                            f"kernel, raise in result())")


class _Device:
    """What ``x.device`` is on a CuPy array: the emulation has one device, 0."""

    id = 0

    def __repr__(self):
        return "<Emulated CUDA Device 0>"

    def __eq__(self, other):
        return isinstance(other, _Device)

    def __hash__(self):
        return 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


DEVICE = _Device()


class _Pointer:
    """``x.data`` of a CuPy array: a memory pointer with ``.ptr``."""

    def __init__(self, ptr: int):
        self.ptr = ptr


def _is_host_array(x) -> bool:
    return isinstance(x, np.ndarray) and x.ndim > 0


def _unwrap(x, check_mixing: bool = False):
    """Device arrays -> their buffers (recursively in lists, tuples, dicts)."""
    if isinstance(x, EmuDeviceArray):
        return x._a
    if check_mixing and _is_host_array(x):
        raise TypeError(f"Unsupported type {type(x)}: a numpy array cannot be mixed with device arrays "
                        f"(CuPy raises here too); move it to the device with xp.asarray first")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, check_mixing) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, check_mixing) for k, v in x.items()}
    return x


def _wrap(x):
    """numpy results -> device arrays (numpy scalars become 0-d device arrays, as CuPy reductions give)."""
    if isinstance(x, EmuDeviceArray):
        return x
    if isinstance(x, np.ndarray):
        return EmuDeviceArray(x)
    if isinstance(x, np.generic):
        return EmuDeviceArray(np.asarray(x))
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _on_device(fn, check_mixing: bool = True):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        return _wrap(fn(*_unwrap(args, check_mixing), **_unwrap(kwargs, check_mixing)))
    return call


class EmuDeviceArray(NDArrayOperatorsMixin):
    """An array in emulated device memory (CuPy-like). ``EmuDeviceArray(np_array)`` wraps without copying."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100

    def __init__(self, buffer: np.ndarray):
        if not isinstance(buffer, np.ndarray):
            raise TypeError("EmuDeviceArray wraps a numpy buffer; use cuda_emu.to_device(x) to copy data in")
        self._a = buffer

    # ------------------------------------------------------------ CUDA-facing interface
    @property
    def __cuda_array_interface__(self) -> dict:
        a = self._a
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False), "version": 3,
                "strides": None if a.flags.c_contiguous else a.strides, "stream": None}

    @property
    def device(self) -> _Device:
        return DEVICE

    @property
    def data(self) -> _Pointer:
        return _Pointer(self._a.ctypes.data)

    # ------------------------------------------------------------ metadata (no host read)
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    size = property(lambda self: self._a.size)
    ndim = property(lambda self: self._a.ndim)
    strides = property(lambda self: self._a.strides)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    flags = property(lambda self: self._a.flags)

    def __len__(self):
        return len(self._a)

    def __getattr__(self, name):
        if name.startswith("__") or name == "_a":
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return _on_device(attr)
        return _wrap(attr)

    # ------------------------------------------------------------ device operations
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        result = getattr(ufunc, method)(*_unwrap(inputs, True), **_unwrap(kwargs, True))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        return _wrap(func(*_unwrap(args, True), **_unwrap(kwargs, True)))

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap(key)])

    def __setitem__(self, key, value):
        self._a[_unwrap(key)] = _unwrap(value)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self._a)))

    def copy(self, order="C"):
        return EmuDeviceArray(_device_copy(self._a))

    def astype(self, dtype, order="K", casting="unsafe", subok=None, copy=True):
        if not copy and np.dtype(dtype) == self._a.dtype:
            return self
        return EmuDeviceArray(_device_copy(self._a.astype(dtype, casting=casting)))

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA, device 0

    # ------------------------------------------------------------ host reads (synchronise on a GPU)
    def get(self, stream=None, order="C", out=None) -> np.ndarray:
        check_host_read(".get()")
        host = np.array(self._a, order=order, copy=True)
        if out is not None:
            out[...] = host
            return out
        return host

    def set(self, arr, stream=None) -> None:
        self._a[...] = np.asarray(arr)

    def item(self, *args):
        check_host_read(".item()")
        return self._a.item(*args)

    def tolist(self):
        check_host_read(".tolist()")
        return self._a.tolist()

    def tobytes(self, order="C"):
        check_host_read(".tobytes()")
        return self._a.tobytes(order)

    def __bool__(self):
        check_host_read("bool(device array)")
        return bool(self._a)

    def __int__(self):
        check_host_read("int(device array)")
        return int(self._a)

    def __float__(self):
        check_host_read("float(device array)")
        return float(self._a)

    def __complex__(self):
        check_host_read("complex(device array)")
        return complex(self._a)

    def __index__(self):
        check_host_read("operator.index(device array)")
        return self._a.__index__()

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion of an (emulated) device array to a NumPy array is not allowed, "
                        "as in CuPy; use .get() (or backend.host() in tests)")

    def __repr__(self):
        check_host_read("repr(device array)")
        return "EmuDeviceArray(" + np.array2string(self._a, separator=", ") + f", dtype={self._a.dtype})"

    def __str__(self):
        check_host_read("str(device array)")
        return str(self._a)

    def __format__(self, spec):
        check_host_read("format(device array)")
        return format(self._a if self._a.ndim else self._a[()], spec)

    def __reduce__(self):
        check_host_read("pickling a device array")
        return (to_device, (np.array(self._a),))


# Every allocation made through this module (xp.*, to_device) is followed by CANARY bytes of a known pattern;
# after each launch the kernel checker verifies them, so a kernel writing past the end of an array is an
# error at its launch (what compute-sanitizer's memcheck would report on a GPU).
CANARY = 64
_CANARY_BYTE = 0xCD
_allocations: dict[int, tuple] = {}  # id(owner buffer) -> (weak reference, offset, payload bytes)


def _allocate(shape, dtype, order="C") -> np.ndarray:
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    owner = np.empty(nbytes + CANARY + 64, np.uint8)  # every view's .base: alive as long as any view is
    start = (-owner.ctypes.data) % 64  # 64-byte aligned (cudaMalloc gives 256; enough for vector loads)
    owner[start + nbytes:start + nbytes + CANARY] = _CANARY_BYTE
    key = id(owner)
    _allocations[key] = (weakref.ref(owner, lambda _, key=key: _allocations.pop(key, None)), start, nbytes)
    flat = owner[start:start + nbytes].view(dtype)
    return flat.reshape(shape, order=order) if order in ("C", "F") else flat.reshape(shape)


def check_canaries() -> list[str]:
    """Allocations whose guard bytes were overwritten (each reported once; the guard is then restored)."""
    bad = []
    for ref, start, nbytes in list(_allocations.values()):
        owner = ref()
        if owner is None:
            continue
        tail = owner[start + nbytes:start + nbytes + CANARY]
        if (tail != _CANARY_BYTE).any():
            first = int(np.flatnonzero(tail != _CANARY_BYTE)[0])
            bad.append(f"byte {first} past the end of a {nbytes}-byte device allocation was written")
            tail[:] = _CANARY_BYTE
    return bad


def _device_copy(a: np.ndarray, dtype=None) -> np.ndarray:
    a = np.asarray(a, dtype=dtype)
    out = _allocate(a.shape, a.dtype)
    out[...] = a
    return out


def to_device(x, dtype=None) -> EmuDeviceArray:
    """Copy host data into emulated device memory (``cupy.asarray`` of a numpy array)."""
    return EmuDeviceArray(_device_copy(x._a if isinstance(x, EmuDeviceArray) else x, dtype))


def from_cuda_array_interface(obj) -> EmuDeviceArray:
    """Wrap a foreign ``__cuda_array_interface__`` producer whose pointer is host-addressable (zero-copy)."""
    iface = obj.__cuda_array_interface__
    dtype = np.dtype(iface["typestr"])
    shape = tuple(iface["shape"])
    strides = iface.get("strides")
    ptr = iface["data"][0]
    n = int(np.prod(shape, dtype=np.int64))
    if strides is None:
        span = n * dtype.itemsize
        strides = None
    else:
        span = (sum((s - 1) * abs(st) for s, st in zip(shape, strides)) + dtype.itemsize) if n else 0
    raw = (ctypes.c_char * max(span, 1)).from_address(ptr) if ptr else bytearray(1)
    buf = np.frombuffer(raw, dtype=np.uint8, count=span)
    arr = np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides)
    return EmuDeviceArray(arr)


def _filled(shape, dtype, fill, order="C") -> EmuDeviceArray:
    a = _allocate(shape, dtype if dtype is not None else np.float64, order)
    if fill is None:  # cupy.empty is garbage: poison it, so code that relies on zeros fails
        a.view(np.uint8).reshape(-1)[...] = 0xFF if a.size else 0
    else:
        a[...] = fill
    return EmuDeviceArray(a)


class _DeviceNamespace(types.SimpleNamespace):
    """numpy's API on device arrays (what ``runtime.xp`` is): creation functions return device arrays."""

    def __init__(self, module=np):
        super().__init__()
        self._module = module

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        obj = getattr(self._module, name)
        if isinstance(obj, (type, np.ufunc)) or not callable(obj):
            return obj if not isinstance(obj, types.ModuleType) else _DeviceNamespace(obj)
        return _on_device(obj)


class _Xp(_DeviceNamespace):
    ndarray = EmuDeviceArray

    def asarray(self, a, dtype=None, order=None):
        if isinstance(a, EmuDeviceArray):
            return a if dtype is None or np.dtype(dtype) == a.dtype else EmuDeviceArray(_device_copy(a._a, dtype))
        if hasattr(a, "__cuda_array_interface__"):
            return self.asarray(from_cuda_array_interface(a), dtype)
        return EmuDeviceArray(_device_copy(_unwrap(a), dtype))

    def array(self, a, dtype=None, copy=True, order="K", ndmin=0):
        if isinstance(a, EmuDeviceArray) and not copy and ndmin <= a.ndim:
            return self.asarray(a, dtype)
        host = np.array(_unwrap(a), dtype=dtype, copy=True, ndmin=ndmin)
        return EmuDeviceArray(_device_copy(host))

    def ascontiguousarray(self, a, dtype=None):
        a = self.asarray(a, dtype)
        return a if a._a.flags.c_contiguous else EmuDeviceArray(_device_copy(a._a))

    def asnumpy(self, a, stream=None, order="C", out=None):
        if isinstance(a, EmuDeviceArray):
            return a.get(order=order, out=out)
        return np.asarray(a, order=order)

    def zeros(self, shape, dtype=float, order="C"):
        return _filled(shape, dtype, 0, order)

    def ones(self, shape, dtype=float, order="C"):
        return _filled(shape, dtype, 1, order)

    def empty(self, shape, dtype=float, order="C"):
        return _filled(shape, dtype, None, order)

    def full(self, shape, fill_value, dtype=None, order="C"):
        fill = _unwrap(fill_value)
        return _filled(shape, dtype if dtype is not None else np.asarray(fill).dtype, fill, order)

    def _like(self, a, dtype, shape, fill):
        a = _unwrap(a)
        return _filled(a.shape if shape is None else shape, a.dtype if dtype is None else dtype, fill)

    def zeros_like(self, a, dtype=None, order="K", subok=None, shape=None):
        return self._like(a, dtype, shape, 0)

    def ones_like(self, a, dtype=None, order="K", subok=None, shape=None):
        return self._like(a, dtype, shape, 1)

    def empty_like(self, a, dtype=None, order="K", subok=None, shape=None):
        return self._like(a, dtype, shape, None)

    def full_like(self, a, fill_value, dtype=None, order="K", subok=None, shape=None):
        return self._like(a, dtype, shape, _unwrap(fill_value))

    @staticmethod
    def get_array_module(*args):
        return xp if any(isinstance(a, EmuDeviceArray) for a in args) else np


xp = _Xp()
