"""Numba elementwise_sum (mirror of gpumetrics/_cuda/elementwise_sum.py and kernels/elementwise_sum.cu).

    total += scale * sum(w * f(a, b))        count += scale * sum(w)

over a rows x cols grid, each input addressed as base[r * stride_r + c * stride_c]. Each thread sums one
part of the grid into private accumulators; the parts are added at the end (no atomics, no races).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from gpumetrics._cpu._common import kernel, kind_code, load_float, n_parts, run

FUNC_VALUE, FUNC_ABS_ERROR, FUNC_SQUARED_ERROR, FUNC_EQUAL, FUNC_BINARY_MATCH = range(5)


@njit(inline="always", cache=True)
def _value(func, a, b, threshold):
    if func == FUNC_VALUE:
        return a
    if func == FUNC_ABS_ERROR:
        return abs(a - b)
    if func == FUNC_SQUARED_ERROR:
        return (a - b) * (a - b)
    if func == FUNC_EQUAL:
        return 1.0 if a == b else 0.0
    return 1.0 if a == (1.0 if b > threshold else 0.0) else 0.0  # FUNC_BINARY_MATCH


@kernel()
def _elementwise_sum(a, a_kind, a_sr, a_sc, b, b_kind, b_sr, b_sc, w, w_kind, w_sr, w_sc, has_b, has_w,
                     rows, cols, func, threshold, parts):
    n = rows * cols
    out = np.zeros((parts, 5))  # per part: sum(w*f), sum(w), bad a, bad b, bad w
    for p in prange(parts):
        start = n * p // parts
        stop = n * (p + 1) // parts
        sum_wf = 0.0
        sum_w = 0.0
        bad_a = 0
        bad_b = 0
        bad_w = 0
        r = start // cols
        c = start % cols
        for _ in range(start, stop):
            av = load_float(a, r * a_sr + c * a_sc, a_kind)
            bv = load_float(b, r * b_sr + c * b_sc, b_kind) if has_b else 0.0
            wv = load_float(w, r * w_sr + c * w_sc, w_kind) if has_w else 1.0
            if not np.isfinite(av):
                bad_a += 1
            if not np.isfinite(bv):
                bad_b += 1
            if not np.isfinite(wv):
                bad_w += 1
            sum_wf += wv * _value(func, av, bv, threshold)
            sum_w += wv
            c += 1
            if c == cols:
                c = 0
                r += 1
        out[p, 0] = sum_wf
        out[p, 1] = sum_w
        out[p, 2] = bad_a
        out[p, 3] = bad_b
        out[p, 4] = bad_w
    return out


@njit(inline="always", cache=True)
def _row_sum(func, a, ia, b, ib, count, threshold):
    """(sum of f, poison) over `count` consecutive elements; poison is NaN iff an input is not finite.

    Written as straight loops per function so that LLVM vectorises them (reassociation allowed below).
    For values and errors the sum itself is the poison (a NaN or inf input makes it NaN or inf; finite
    float32 inputs cannot overflow a float64 sum); the matches need a separate one.
    """
    total = 0.0
    poison = 0.0
    if func == FUNC_VALUE:
        for j in range(count):
            total += np.float64(a[ia + j])
        poison = total - total
    elif func == FUNC_ABS_ERROR:
        for j in range(count):
            total += abs(np.float64(a[ia + j]) - np.float64(b[ib + j]))
        poison = total - total
    elif func == FUNC_SQUARED_ERROR:
        for j in range(count):
            d = np.float64(a[ia + j]) - np.float64(b[ib + j])
            total += d * d
        poison = total - total
    elif func == FUNC_EQUAL:
        for j in range(count):
            x = np.float64(a[ia + j])
            y = np.float64(b[ib + j])
            total += 1.0 if x == y else 0.0
            poison += (x - x) + (y - y)
    else:
        for j in range(count):
            x = np.float64(a[ia + j])
            y = np.float64(b[ib + j])
            total += 1.0 if x == (1.0 if y > threshold else 0.0) else 0.0
            poison += (x - x) + (y - y)
    return total, poison


@kernel(fastmath={"reassoc", "contract"})
def _elementwise_sum_rows(a, a_sr, b, b_sr, w, w_sr, has_w, rows, cols, func, threshold, parts):
    """Fast path: a and b contiguous along columns, w constant along a row, plain (not 16-bit) kinds.

    Returns per part [sum(w*f), sum(w), poison]; a NaN poison means "count the invalid values exactly".
    """
    n = rows * cols
    out = np.zeros((parts, 3))
    for p in prange(parts):
        start = n * p // parts
        stop = n * (p + 1) // parts
        sum_wf = 0.0
        sum_w = 0.0
        poison = 0.0
        e = start
        while e < stop:
            r = e // cols
            c = e - r * cols
            count = min(cols - c, stop - e)
            wv = np.float64(w[r * w_sr]) if has_w else 1.0
            total, bad = _row_sum(func, a, r * a_sr + c, b, r * b_sr + c, count, threshold)
            sum_wf += wv * total
            sum_w += wv * count
            poison += bad + (wv - wv)
            e += count
        out[p, 0] = sum_wf
        out[p, 1] = sum_w
        out[p, 2] = poison
    return out


def _fast_path_applies(a, b, w) -> bool:
    plain = all(x is None or x.kind not in ("f2", "bf2") for x in (a, b, w))
    contiguous = a.stride_c == 1 and (b is None or b.stride_c == 1)
    return plain and contiguous and (w is None or w.stride_c == 0)


def elementwise_sum(a, b, w, rows, cols, func, threshold, scale, total, count, invalid) -> None:
    """total += scale * sum(w * f(a, b)); count += scale * sum(w) over a rows x cols grid.

    invalid[0..2] += the number of non-finite a, b and w elements.
    """
    n = rows * cols
    if n == 0:
        return
    b_ = b if b is not None else a
    w_ = w if w is not None else a
    parts = n_parts(n)
    if _fast_path_applies(a, b, w):
        fast = run(_elementwise_sum_rows, parts, a.base, a.stride_r, b_.base, b_.stride_r, w_.base,
                   w_.stride_r, w is not None, rows, cols, func, threshold)
        if np.isfinite(fast).all():
            total += scale * fast[:, 0].sum()
            count += scale * fast[:, 1].sum()
            return
        # Some input is not finite: the counting loop below says exactly which and how many.
    out = run(_elementwise_sum, parts, a.base, kind_code(a.kind), a.stride_r, a.stride_c,
              b_.base, kind_code(b_.kind), b_.stride_r, b_.stride_c,
              w_.base, kind_code(w_.kind), w_.stride_r, w_.stride_c,
              b is not None, w is not None, rows, cols, func, threshold)
    total += scale * out[:, 0].sum()
    count += scale * out[:, 1].sum()
    invalid[:3] += out[:, 2:].sum(axis=0).astype(np.uint64)
