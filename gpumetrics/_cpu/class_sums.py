"""Numba F-score sums (mirror of gpumetrics/_cuda/class_sums.py and kernels/class_sums.cu).

Per row, with values cast to the compute type (float32 as Keras does, or float64): pred_c = y_pred > threshold,
or, without a threshold, every entry tied for the row maximum whose magnitude exceeds 1e-9; then
tp += w*pred*y, fp += w*pred*(1-y), fn += w*(1-pred)*y, support += w*y. Rows with a NaN score, a non-finite
label or a non-finite weight are counted as invalid (3 slots: y_true, y_pred, weight); zero weights skip the row.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from gpumetrics._cpu._common import bfloat16_to_float, half_to_float, kind_code, n_parts

TRUE_VALUE, PRED_VALUE, WEIGHT = range(3)
N_REASONS = 3


def class_sums(y_true, true_kind, true_strides, y_pred, pred_kind, pred_strides, shape, weights, threshold,
               as_double, tp, fp, fn, support, invalid) -> None:
    """Add Keras' F-score sums of one (N, C) batch to ``tp``, ``fp``, ``fn``, ``support`` (float64, (C,)).

    ``*_strides`` = (s_row, s_col) in elements from each array's first element; ``shape`` = (N, C).
    ``weights``: None, or a contiguous float64 array of 1 (broadcast) or N elements. ``threshold``: None
    (every tied row maximum is positive) or a float.
    """
    n, C = int(shape[0]), int(shape[1])
    if n == 0 or C == 0:
        return
    parts = n_parts(n * C)
    weighted = weights is not None
    w = weights if weighted else np.zeros(1, np.float64)
    thr = 0.0 if threshold is None else (float(threshold) if as_double else float(np.float32(threshold)))
    acc = np.zeros((parts, 4, C), np.float64)
    bad = np.zeros((parts, N_REASONS), np.uint64)
    _class_sums(_view2(y_true, true_strides, n, C), kind_code(true_kind),
                _view2(y_pred, pred_strides, n, C), kind_code(pred_kind),
                w, int(weighted and w.size != 1), weighted, threshold is not None, thr, bool(as_double),
                parts, acc, bad)
    total = acc.sum(axis=0)
    tp += total[0]
    fp += total[1]
    fn += total[2]
    support += total[3]
    invalid[:N_REASONS] += bad.sum(axis=0, dtype=np.uint64)


def _view2(x, strides, n, C):
    item = x.itemsize
    return np.lib.stride_tricks.as_strided(x, shape=(n, C), strides=(strides[0] * item, strides[1] * item))


@njit(inline="always", cache=True)
def _value(x, r, c, kind, as_double):
    if kind == 1:
        return np.float64(half_to_float(x[r, c]))
    if kind == 2:
        return np.float64(bfloat16_to_float(x[r, c]))
    if as_double:
        return np.float64(x[r, c])
    return np.float64(np.float32(x[r, c]))


@njit(parallel=True, cache=True, nogil=True)
def _class_sums(t, t_kind, p, p_kind, w, w_stride, weighted, has_threshold, threshold, as_double, parts, acc, bad):
    n, C = p.shape
    tiny = 1e-9 if as_double else np.float64(np.float32(1e-9))
    for part in prange(parts):
        lo = n * part // parts
        hi = n * (part + 1) // parts
        a = acc[part]
        b = bad[part]
        for r in range(lo, hi):
            wr = 1.0
            if weighted:
                wr = w[r * w_stride]
                if wr == 0.0:
                    continue
                if wr - wr != 0.0:
                    b[WEIGHT] += 1
                    continue
            mx = _value(p, r, 0, p_kind, as_double)
            nan_pred = False
            bad_true = False
            for c in range(C):
                v = _value(p, r, c, p_kind, as_double)
                nan_pred |= v != v
                if v > mx:
                    mx = v
                y = _value(t, r, c, t_kind, as_double)
                bad_true |= y - y != 0.0
            if bad_true:
                b[TRUE_VALUE] += 1
                continue
            if nan_pred:
                b[PRED_VALUE] += 1
                continue
            for c in range(C):
                v = _value(p, r, c, p_kind, as_double)
                if has_threshold:
                    pred = v > threshold
                else:
                    pred = v >= mx and (v > tiny or v < -tiny)
                y = _value(t, r, c, t_kind, as_double)
                if pred:
                    a[0, c] += wr * y
                    a[1, c] += wr * (1.0 - y)
                else:
                    a[2, c] += wr * y
                a[3, c] += wr * y
