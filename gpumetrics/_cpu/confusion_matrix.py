"""Numba confusion matrix (mirror of gpumetrics/_cuda/confusion_matrix.py and kernels/confusion_matrix.cu).

Same per-pixel rules and order as the kernel, so integer counts and invalid counts are bit-identical:
y_true == ignore_class -> skipped; weight == 0 -> skipped; bad weight -> invalid; bad y_true value / range
-> invalid; bad y_pred value / range -> invalid; else cm[t, q] += 1 (or += w).

Each thread part keeps a private matrix, merged at the end. Three kernels, picked by the inputs:

* ``_cm_bytes``: both sides 1-byte class ids, no weights (segmentation masks). A 256-entry table per side maps
  a byte to its row offset / column, with one extra row for ignored pixels and one extra row/column for ids
  out of range, so the loop has no branch at all: ``h[row[t] + col[q]] += 1``, 8 pixels per 64-bit load.
* ``_cm_ids``: integer class ids of any width, no weights.
* ``_cm_ids_argmax``: integer class ids against (N, C) or channels-last scores, no weights (the fused argmax).
* ``_cm_generic``: everything else (weights, float ids, the fused argmax, BinaryIoU's threshold), reading
  each side through a 3-D strided view (outer, K, inner).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from gpumetrics._cpu._common import bfloat16_to_float, half_to_float, kind_code, n_parts

TRUE_VALUE, TRUE_RANGE, PRED_VALUE, PRED_RANGE, WEIGHT = range(5)
N_REASONS = 5
MODES = {"ids": 0, "argmax": 1, "threshold": 2}
_IDS, _ARGMAX, _THRESHOLD = 0, 1, 2
_INT_KINDS = ("b1", "u1", "i1", "i2", "u2", "i4", "u4", "i8", "u8")
_FAR = -(2**63)  # an id no class and no ignore_class can equal (floats beyond the int64 range)
BYTES_CHUNK = 1 << 31  # most pixels per call of the byte kernels (their counters are 32-bit); tests shrink it


def confusion_matrix(y_true, true_kind, true_mode, true_view, y_pred, pred_kind, pred_mode, pred_view,
                     threshold, weights, num_classes, ignore_class, counts, sums, invalid) -> None:
    """Add one batch to ``counts`` (int64 C x C, unweighted) or ``sums`` (float64 C x C, weighted).

    ``*_view`` = (outer, K, inner, s_outer, s_class, s_inner) in elements; pixels = outer * inner.
    ``weights``: None, or a contiguous float32/float64 array of 1 (broadcast) or ``pixels`` elements.
    Invalid values are counted into ``invalid`` (5 slots: y_true value, y_true range, y_pred value, y_pred
    range, weight) and nothing else; the metric's commit decides.
    """
    n = int(true_view[0]) * int(true_view[2])
    if n == 0:
        return
    C = int(num_classes)
    parts = n_parts(n)
    has_ignore = ignore_class is not None
    ignore = int(ignore_class) if has_ignore else 0
    ids = true_mode == "ids" and pred_mode == "ids" and weights is None
    if ids and true_kind in _INT_KINDS and pred_kind in _INT_KINDS:
        t, p = _flat(y_true, true_view), _flat(y_pred, pred_view)
        if t.itemsize == 1 and p.itemsize == 1:
            _bytes_path(t, true_kind, p, pred_kind, C, has_ignore, ignore, parts, counts, invalid)
            return
        hist = np.zeros((parts, C * C), np.int64)
        bad = np.zeros((parts, N_REASONS), np.uint64)
        _cm_ids(t, p, C, has_ignore, ignore, parts, hist, bad)
        counts += hist.sum(axis=0).reshape(C, C)
        invalid[:N_REASONS] += bad.sum(axis=0, dtype=np.uint64)
        return
    if (true_mode == "ids" and pred_mode == "argmax" and weights is None and true_kind in _INT_KINDS
            and int(pred_view[2]) == 1):
        # (N, C) or channels-last scores: each pixel's scores are one row; no per-pixel index arithmetic.
        scores = np.lib.stride_tricks.as_strided(
            y_pred, shape=(int(pred_view[0]), int(pred_view[1])),
            strides=(int(pred_view[3]) * y_pred.itemsize, int(pred_view[4]) * y_pred.itemsize))
        hist = np.zeros((parts, C * C), np.int64)
        bad = np.zeros((parts, N_REASONS), np.uint64)
        _cm_ids_argmax(_flat(y_true, true_view), scores, kind_code(pred_kind), C, has_ignore, ignore, parts, hist,
                       bad)
        counts += hist.sum(axis=0).reshape(C, C)
        invalid[:N_REASONS] += bad.sum(axis=0, dtype=np.uint64)
        return
    weighted = weights is not None
    w = weights if weighted else np.zeros(1, np.float64)
    hist = np.zeros((parts, C * C) if not weighted else (1, 1), np.int64)
    acc = np.zeros((parts, C * C) if weighted else (1, 1), np.float64)
    bad = np.zeros((parts, N_REASONS), np.uint64)
    _cm_generic(_view3(y_true, true_view), kind_code(true_kind), MODES[true_mode], true_kind in _INT_KINDS,
                _view3(y_pred, pred_view), kind_code(pred_kind), MODES[pred_mode], pred_kind in _INT_KINDS,
                np.float32(threshold), w, int(weighted and w.size != 1), weighted,
                C, has_ignore, ignore, parts, hist, acc, bad)
    if weighted:
        sums += acc.sum(axis=0).reshape(C, C)
    else:
        counts += hist.sum(axis=0).reshape(C, C)
    invalid[:N_REASONS] += bad.sum(axis=0, dtype=np.uint64)


def _view3(x, view):
    """The (outer, K, inner) strided view of ``x`` that ``view`` describes (element strides)."""
    outer, k, inner, s_outer, s_class, s_inner = (int(v) for v in view)
    item = x.itemsize
    return np.lib.stride_tricks.as_strided(x, shape=(outer, k, inner),
                                           strides=(s_outer * item, s_class * item, s_inner * item))


def _flat(x, view):
    """1-D view of a class-id side (K = 1, inner = 1); 1-byte kinds as uint8 so one table serves all."""
    outer, _, _, s_outer, _, _ = (int(v) for v in view)
    flat = np.lib.stride_tricks.as_strided(x, shape=(outer,), strides=(s_outer * x.itemsize,))
    return flat.view(np.uint8) if x.itemsize == 1 else flat


def _byte_table(kind: str, C: int, ignore: int | None, is_true: bool) -> np.ndarray:
    """byte -> row (true side: class, C = ignored, C + 1 = out of range) or column (C = out of range)."""
    values = np.arange(256, dtype=np.int64)
    if kind == "i1":
        values = values.astype(np.uint8).view(np.int8).astype(np.int64)
    table = np.where((values >= 0) & (values < C), values, C + 1 if is_true else C)
    if is_true and ignore is not None:
        table = np.where(values == ignore, C, table)
    return table.astype(np.int64)


def _bytes_path(t, true_kind, p, pred_kind, C, has_ignore, ignore, parts, counts, invalid) -> None:
    width = C + 1
    rows = _byte_table(true_kind, C, ignore if has_ignore else None, True) * width  # premultiplied row offsets
    cols = _byte_table(pred_kind, C, None, False)
    # 32-bit private counters (half the cache footprint of 150 classes' 183 KB); a call sees at most
    # BYTES_CHUNK pixels, so no counter can wrap, and each chunk is added to an int64 total.
    hist = np.zeros((parts, (C + 2) * width), np.uint32)
    total = np.zeros((C + 2) * width, np.int64)
    n = t.shape[0]
    words = n // 8 if t.flags.c_contiguous and p.flags.c_contiguous else 0
    step = max(1, BYTES_CHUNK // 8)
    for lo in range(0, words, step):
        # 8 pixels per 64-bit load on each side: halves the loop's load and index work.
        hi = min(words, lo + step)
        _cm_bytes_words(t[8 * lo:8 * hi].view(np.uint64), p[8 * lo:8 * hi].view(np.uint64), rows, cols, parts, hist)
        total += hist.sum(axis=0, dtype=np.int64)
        hist[:] = 0
    for lo in range(8 * words, n, BYTES_CHUNK):
        hi = min(n, lo + BYTES_CHUNK)
        _cm_bytes(t[lo:hi], rows, p[lo:hi], cols, n_parts(hi - lo), hist)
        total += hist.sum(axis=0, dtype=np.int64)
        hist[:] = 0
    h = total.reshape(C + 2, C + 1)
    counts += h[:C, :C]
    invalid[TRUE_RANGE] += np.uint64(h[C + 1].sum())
    invalid[PRED_RANGE] += np.uint64(h[:C, C].sum())


@njit(parallel=True, cache=True, nogil=True)
def _cm_bytes(t, rows, p, cols, parts, hist):
    n = t.shape[0]
    for part in prange(parts):
        lo = n * part // parts
        hi = n * (part + 1) // parts
        h = hist[part]
        for k in range(lo, hi):
            h[rows[t[k]] + cols[p[k]]] += 1


@njit(parallel=True, cache=True, nogil=True)
def _cm_bytes_words(t8, p8, rows, cols, parts, hist):
    n = t8.shape[0]
    mask = np.uint64(255)
    for part in prange(parts):
        lo = n * part // parts
        hi = n * (part + 1) // parts
        h = hist[part]
        for k in range(lo, hi):
            a = t8[k]
            b = p8[k]
            for s in range(8):  # little-endian: byte s of the word is pixel 8k + s (order does not matter)
                shift = np.uint64(8 * s)
                h[rows[(a >> shift) & mask] + cols[(b >> shift) & mask]] += 1


@njit(parallel=True, cache=True, nogil=True)
def _cm_ids(t, p, C, has_ignore, ignore, parts, hist, bad):
    n = t.shape[0]
    for part in prange(parts):
        lo = n * part // parts
        hi = n * (part + 1) // parts
        h = hist[part]
        b = bad[part]
        for k in range(lo, hi):
            a = np.int64(t[k])
            if has_ignore and a == ignore:
                continue
            if a < 0 or a >= C:
                b[TRUE_RANGE] += 1
                continue
            q = np.int64(p[k])
            if q < 0 or q >= C:
                b[PRED_RANGE] += 1
                continue
            h[a * C + q] += 1


@njit(parallel=True, cache=True, nogil=True)
def _cm_ids_argmax(t, s, kind, C, has_ignore, ignore, parts, hist, bad):
    n, K = s.shape
    for part in prange(parts):
        lo = n * part // parts
        hi = n * (part + 1) // parts
        h = hist[part]
        b = bad[part]
        for k in range(lo, hi):
            a = np.int64(t[k])
            if has_ignore and a == ignore:
                continue
            if a < 0 or a >= C:
                b[TRUE_RANGE] += 1
                continue
            if kind == 0:  # plain float or integer scores: compared in their own type (exact)
                best = s[k, 0]
                nan = best != best
                arg = 0
                for c in range(1, K):
                    v = s[k, c]
                    nan |= v != v
                    if v > best:
                        best = v
                        arg = c
            else:
                best32 = _load2(s, k, 0, kind)
                nan = best32 != best32
                arg = 0
                for c in range(1, K):
                    v32 = _load2(s, k, c, kind)
                    nan |= v32 != v32
                    if v32 > best32:
                        best32 = v32
                        arg = c
            if nan:
                b[PRED_VALUE] += 1
                continue
            h[a * C + arg] += 1


@njit(inline="always", cache=True)
def _load2(x, r, c, kind):
    if kind == 1:
        return half_to_float(x[r, c])
    return bfloat16_to_float(x[r, c])


@njit(inline="always", cache=True)
def _load(x, o, c, i, kind):
    if kind == 1:
        return np.float64(half_to_float(x[o, c, i]))
    if kind == 2:
        return np.float64(bfloat16_to_float(x[o, c, i]))
    return np.float64(x[o, c, i])


@njit(inline="always", cache=True)
def _read(x, kind, mode, is_int, p, threshold):
    """(ok, class id) of pixel ``p`` of one side; the kernel's gm_cm_read."""
    inner = x.shape[2]
    o = p // inner
    i = p - o * inner
    if mode == 0:
        if is_int:
            return True, np.int64(x[o, 0, i])
        d = _load(x, o, 0, i, kind)
        if d != d or d - d != 0.0:
            return False, np.int64(0)
        if d >= 4.0e18 or d <= -4.0e18:
            return True, np.int64(_FAR)
        ll = np.int64(d)
        if np.float64(ll) != d:
            return False, np.int64(0)
        return True, ll
    if mode == 2:
        v = np.float32(_load(x, o, 0, i, kind))
        if v != v:
            return False, np.int64(0)
        return True, np.int64(1) if v >= threshold else np.int64(0)
    best = _load(x, o, 0, i, kind)
    nan = best != best
    arg = 0
    for c in range(1, x.shape[1]):
        v = _load(x, o, c, i, kind)
        nan |= v != v
        if v > best:
            best = v
            arg = c
    if nan:
        return False, np.int64(0)
    return True, np.int64(arg)


@njit(parallel=True, cache=True, nogil=True)
def _cm_generic(t3, t_kind, t_mode, t_int, p3, p_kind, p_mode, p_int, threshold, w, w_stride, weighted,
                C, has_ignore, ignore, parts, hist, acc, bad):
    n = t3.shape[0] * t3.shape[2]
    for part in prange(parts):
        lo = n * part // parts
        hi = n * (part + 1) // parts
        b = bad[part]
        for k in range(lo, hi):
            ok, t = _read(t3, t_kind, t_mode, t_int, k, threshold)
            if has_ignore and ok and t == ignore:
                continue
            wk = 1.0
            if weighted:
                wk = np.float64(w[k * w_stride])
                if wk == 0.0:
                    continue
                if not (wk > 0.0) or wk - wk != 0.0:
                    b[WEIGHT] += 1
                    continue
            if not ok:
                b[TRUE_VALUE] += 1
                continue
            if t < 0 or t >= C:
                b[TRUE_RANGE] += 1
                continue
            okp, q = _read(p3, p_kind, p_mode, p_int, k, threshold)
            if not okp:
                b[PRED_VALUE] += 1
                continue
            if q < 0 or q >= C:
                b[PRED_RANGE] += 1
                continue
            if weighted:
                acc[part, t * C + q] += wk
            else:
                hist[part, t * C + q] += 1
