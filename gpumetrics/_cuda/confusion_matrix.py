"""Launcher for kernels/confusion_matrix.cu (mirror: gpumetrics/_cpu/confusion_matrix.py).

Module constants (tests shrink them): ``BLOCK`` threads per block; ``SHARED_BYTES`` the shared-memory budget
of the privatised path (48 KiB needs no opt-in on any GPU; a C x C matrix that does not fit takes the
global-atomics path, so C = 1000 works); ``FLUSH_INTERVAL`` the most increments a block's 32-bit shared
counters take before they are flushed to the 64-bit global matrix; ``MAX_COPIES`` private matrices per block.
"""
from __future__ import annotations

import numpy as np

from gpumetrics._cuda._launch import grid_for
from gpumetrics._cuda._runtime import get_runtime
from gpumetrics._dtypes import CUDA_TYPE, KIND_CODE

# Element kinds either side may have (gpumetrics/functional/confusion.py converts the rare others).
# y_pred's kind is a template parameter (the side that carries scores); y_true's is a runtime code
# (_dtypes.KIND_CODE = gm_kind in kernels/gm_common.cuh), which keeps the registry to one instantiation per
# y_pred kind.
KINDS = ("u1", "i1", "i2", "i4", "i8", "f2", "bf2", "f4", "f8")
KERNELS = tuple(f"confusion_matrix<{CUDA_TYPE[k]}>" for k in KINDS)

BLOCK = 256
SHARED_BYTES = 48 * 1024
FLUSH_INTERVAL = 1 << 31
MAX_COPIES = 8

MODES = {"ids": 0, "argmax": 1, "threshold": 2}


def plan(num_classes: int, weighted: bool, block: int) -> tuple[int, int]:
    """(use_shared, copies): how many private C x C matrices per block fit the shared-memory budget."""
    matrix_bytes = num_classes * num_classes * (8 if weighted else 4)
    copies = min(MAX_COPIES, max(1, block // 32), SHARED_BYTES // matrix_bytes)
    return (1, copies) if copies >= 1 else (0, 1)


def confusion_matrix(y_true, true_kind, true_mode, true_view, y_pred, pred_kind, pred_mode, pred_view,
                     threshold, weights, num_classes, ignore_class, counts, sums, invalid) -> None:
    """Add one batch to ``counts`` (int64 C x C, unweighted) or ``sums`` (float64 C x C, weighted).

    ``*_view`` = (outer, K, inner, s_outer, s_class, s_inner) in elements; pixels = outer * inner.
    ``weights``: None, or a contiguous float32/float64 device array of 1 (broadcast) or ``pixels`` elements.
    Invalid values are counted into ``invalid`` (5 slots: y_true value, y_true range, y_pred value, y_pred
    range, weight) and nothing else; the metric's commit decides.
    """
    outer, t_classes, t_inner, t_so, t_sc, t_si = (int(v) for v in true_view)
    p_outer, p_classes, p_inner, p_so, p_sc, p_si = (int(v) for v in pred_view)
    n = outer * t_inner
    if n == 0:
        return
    runtime = get_runtime()
    xp = runtime.xp
    name = f"confusion_matrix<{CUDA_TYPE[pred_kind]}>"
    kernel = runtime.kernel("confusion_matrix", name)
    if weights is None:
        w4, w8, w_kind, w_stride = xp.zeros(1, np.float32), xp.zeros(1, np.float64), 0, 0
    elif weights.dtype == np.float32:
        w4, w8, w_kind, w_stride = weights, xp.zeros(1, np.float64), 1, int(weights.size != 1)
    else:
        w4, w8, w_kind, w_stride = xp.zeros(1, np.float32), weights, 2, int(weights.size != 1)
    block = BLOCK  # a multiple of 32: the kernel's warp-uniform fast path needs whole warps
    use_shared, copies = plan(num_classes, w_kind != 0, block)
    shared = num_classes * num_classes * (8 if w_kind else 4) * copies if use_shared else 0
    rounds = max(1, FLUSH_INTERVAL // block)
    kernel((grid_for(n, block),), (block,),
           (y_true, np.int32(KIND_CODE[true_kind]), np.int32(MODES[true_mode]), np.int64(t_classes),
            np.int64(t_inner), np.int64(t_so), np.int64(t_sc), np.int64(t_si),
            y_pred, np.int32(MODES[pred_mode]), np.int64(p_classes), np.int64(p_inner), np.int64(p_so),
            np.int64(p_sc), np.int64(p_si), np.float32(threshold),
            w4, w8, np.int32(w_kind), np.int64(w_stride),
            np.int64(n), np.int32(num_classes), np.int32(ignore_class is not None),
            np.int64(0 if ignore_class is None else ignore_class),
            counts, sums, invalid,
            np.int32(use_shared), np.int32(copies), np.int64(rounds)),
           shared_mem=shared)
