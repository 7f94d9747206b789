"""What every Numba kernel shares: reading any storage kind as float, and the thread-chunking rule.

Mirror of kernels/gm_common.cuh. 16-bit floats arrive as raw uint16 words (see gpumetrics/_dtypes.py) and
are widened here with the same exact integer routine as the CUDA side.
"""
from __future__ import annotations

import os
import threading
import types

import numba
import numpy as np
from numba import njit

# Kind codes passed to Numba kernels (a compile-time constant per call site after specialisation).
KIND_PLAIN, KIND_F16, KIND_BF16 = 0, 1, 2

# Smallest share of a parallel loop given to one thread: below it, threads cost more than they save.
# A module constant so tests can shrink it and run the multi-part merge on small inputs.
MIN_PART = 1 << 15


def kind_code(kind: str) -> int:
    return {"f2": KIND_F16, "bf2": KIND_BF16}.get(kind, KIND_PLAIN)


@njit(inline="always", cache=True)
def half_to_float(h):
    """IEEE binary16 bits -> float32 value, exact for all 65536 patterns."""
    h = np.uint32(h)
    sign = (h & np.uint32(0x8000)) << np.uint32(16)
    exp = (h >> np.uint32(10)) & np.uint32(0x1F)
    man = h & np.uint32(0x3FF)
    if exp == 0x1F:
        bits = sign | np.uint32(0x7F800000) | (man << np.uint32(13))
    elif exp == 0:
        value = np.float32(man) * np.float32(5.9604644775390625e-08)
        return -value if sign else value
    else:
        bits = sign | ((exp + np.uint32(112)) << np.uint32(23)) | (man << np.uint32(13))
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


@njit(inline="always", cache=True)
def bfloat16_to_float(h):
    bits = np.uint32(h) << np.uint32(16)
    return np.array([bits], dtype=np.uint32).view(np.float32)[0]


@njit(inline="always", cache=True)
def load_float(array, index, kind):
    """Element ``index`` of a flat array of storage ``kind`` (KIND_*), as float64."""
    if kind == KIND_F16:
        return np.float64(half_to_float(array[index]))
    if kind == KIND_BF16:
        return np.float64(bfloat16_to_float(array[index]))
    return np.float64(array[index])


def kernel(**options):
    """Compile a prange kernel twice: parallel, and serial for work too small to wake the thread pool.

    ``fn.parallel(...)`` and ``fn.serial(...)`` share one body; ``run(fn, parts, ...)`` picks by ``parts``.
    Waking the pool costs tens of microseconds idle and milliseconds on a loaded machine.
    """
    def compile_both(fn):
        fn.parallel = njit(parallel=True, cache=True, nogil=True, **options)(fn)
        # Numba names cache files after the function: the serial twin needs a name of its own.
        fn.serial = njit(cache=True, nogil=True, **options)(_renamed(fn, "_serial"))
        return fn

    return compile_both


def _renamed(fn, suffix: str):
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__,
                               fn.__closure__)
    clone.__qualname__ = fn.__qualname__ + suffix
    clone.__module__ = fn.__module__
    return clone


_pool_pid: int | None = None  # process whose Numba thread pool has started
_workqueue_lock = threading.Lock()


def _pool_usable() -> bool:
    """False in a forked child of a process that started a GNU OpenMP pool (it would hang: not fork-safe)."""
    global _pool_pid
    if _pool_pid is None:
        _pool_pid = os.getpid()
    return _pool_pid == os.getpid() or _threading_layer() != "omp"


def _threading_layer() -> str:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return ""


def run(fn, parts: int, *args):
    """Call a :func:`kernel` with ``parts`` private accumulators: in parallel only when parts > 1.

    Falls back to the serial twin where the thread pool cannot be used (a forked child of a GNU OpenMP
    process), and serialises calls on the workqueue layer, which aborts on concurrent use from two threads.
    """
    if parts <= 1 or not _pool_usable():
        return fn.serial(*args, parts)
    if _threading_layer() == "workqueue":
        with _workqueue_lock:
            return fn.parallel(*args, parts)
    return fn.parallel(*args, parts)


def n_parts(n: int) -> int:
    """Parts (one private accumulator each, merged at the end) for ``n`` elements: one per thread at most."""
    return int(max(1, min(numba.get_num_threads(), -(-int(n) // MIN_PART))))
