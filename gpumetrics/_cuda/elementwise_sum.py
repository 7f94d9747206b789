"""Launcher for kernels/elementwise_sum.cu (mirror: gpumetrics/_cpu/elementwise_sum.py)."""
from __future__ import annotations

import numpy as np

from gpumetrics._cuda._launch import grid_for
from gpumetrics._cuda._runtime import get_runtime
from gpumetrics._dtypes import KIND_CODE

KERNELS = ("elementwise_sum",)
BLOCK = 256

FUNC_VALUE, FUNC_ABS_ERROR, FUNC_SQUARED_ERROR, FUNC_EQUAL, FUNC_BINARY_MATCH = range(5)


def _operand(x):
    """(pointer array, kind code, row stride, column stride) of a Strided input, or null for a missing one."""
    if x is None:
        return None, np.int32(0), np.int64(0), np.int64(0)
    return x.base, np.int32(KIND_CODE[x.kind]), np.int64(x.stride_r), np.int64(x.stride_c)


def elementwise_sum(a, b, w, rows, cols, func, threshold, scale, total, count, invalid) -> None:
    """total += scale * sum(w * f(a, b)); count += scale * sum(w) over a rows x cols grid.

    invalid[0..2] += the number of non-finite a, b and w elements.
    """
    n = rows * cols
    if n == 0:
        return
    kernel = get_runtime().kernel("elementwise_sum", "elementwise_sum")
    kernel((grid_for(n, BLOCK),), (BLOCK,),
           (*_operand(a), *_operand(b), *_operand(w), np.int64(rows), np.int64(cols), np.int32(func),
            np.float64(threshold), np.float64(scale), total, count, invalid))
