"""Launcher for kernels/class_sums.cu (mirror: gpumetrics/_cpu/class_sums.py).

``BLOCK`` threads per block and ``SHARED_BYTES`` (the budget for the per-block 4 x C double accumulators;
beyond it the terms go to global memory) are module constants, so tests can shrink them.
"""
from __future__ import annotations

import numpy as np

from gpumetrics._cuda._launch import grid_for
from gpumetrics._cuda._runtime import get_runtime
from gpumetrics._dtypes import CUDA_TYPE, KIND_CODE

# y_pred's kind is a template parameter; y_true's is a runtime code (_dtypes.KIND_CODE = gm_kind).
KINDS = ("u1", "i1", "i2", "i4", "i8", "f2", "bf2", "f4", "f8")
KERNELS = tuple(f"class_sums<{CUDA_TYPE[k]}>" for k in KINDS)

BLOCK = 256
SHARED_BYTES = 48 * 1024


def class_sums(y_true, true_kind, true_strides, y_pred, pred_kind, pred_strides, shape, weights, threshold,
               as_double, tp, fp, fn, support, invalid) -> None:
    """Add Keras' F-score sums of one (N, C) batch to ``tp``, ``fp``, ``fn``, ``support`` (float64, (C,)).

    ``*_strides`` = (s_row, s_col) in elements from each array's first element; ``shape`` = (N, C).
    ``weights``: None, or a contiguous float64 device array of 1 (broadcast) or N elements. ``threshold``:
    None (every tied row maximum is positive) or a float.
    ``as_double``: compare and sum values as float64 instead of Keras' float32. Invalid values are counted
    into ``invalid`` (3 slots: y_true, y_pred, weight).
    """
    n, num_classes = int(shape[0]), int(shape[1])
    if n == 0 or num_classes == 0:
        return
    runtime = get_runtime()
    xp = runtime.xp
    kernel = runtime.kernel("class_sums", f"class_sums<{CUDA_TYPE[pred_kind]}>")
    if weights is None:
        w, weighted, w_stride = xp.zeros(1, np.float64), 0, 0
    else:
        w, weighted, w_stride = weights, 1, int(weights.size != 1)
    thr = 0.0 if threshold is None else (float(threshold) if as_double else float(np.float32(threshold)))
    use_shared = int(4 * num_classes * 8 <= SHARED_BYTES)
    kernel((grid_for(n, BLOCK),), (BLOCK,),
           (y_true, np.int32(KIND_CODE[true_kind]), np.int64(true_strides[0]), np.int64(true_strides[1]),
            y_pred, np.int64(pred_strides[0]), np.int64(pred_strides[1]),
            w, np.int32(weighted), np.int64(w_stride),
            np.int64(n), np.int32(num_classes), np.int32(threshold is not None), np.float64(thr),
            np.int32(bool(as_double)), tp, fp, fn, support, invalid, np.int32(use_shared)),
           shared_mem=4 * num_classes * 8 if use_shared else 0)
