"""Numba threshold histogram (mirror of kernels/threshold_histogram.cu and gpumetrics/_cuda/threshold_histogram.py).

Each thread owns a private pair of histograms over a contiguous range of rows; the pairs are summed at the
end (no atomics, no races). Integer counts are bit-identical to the CUDA kernel's. The parallel kernels
are compiled twice (``_common.kernel``) and called through ``_common.run``: serially for one part, in a
forked child of a GNU OpenMP process, and one at a time on the workqueue layer.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from gpumetrics._cpu._common import KIND_BF16, KIND_F16, KIND_PLAIN, kernel, kind_code, n_parts, run

_LABEL_RULES = {"f2": (0x7FFF, 0x7C00), "bf2": (0x7FFF, 0x7F80), "f4": (0x7FFFFFFF, 0x7F800000),
                "f8": (0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000)}
_ALL = 0xFFFFFFFFFFFFFFFF
_INT64_MAX = (1 << 63) - 1


def _i64(bits: int) -> np.int64:
    """A 64-bit pattern as int64 (labels are tested in int64: numba mixes uint64 with int64 through float64)."""
    return np.int64(bits - (1 << 64) if bits >= 1 << 63 else bits)


def threshold_histogram(scores, labels, weights, label_weights, keys, guide, mode, n_thresholds, epsilon,
                        top_k, class_id, per_column, from_logits, guide_lo, guide_scale, out_pos, out_neg,
                        invalid) -> None:
    """Add one batch to the per-bin positive and negative histograms.

    Parameters
    ----------
    scores, labels : Array
        2-D views (rows, columns) of the same shape; ``labels.data`` holds the raw unsigned words of the
        labels (a label is positive when its bits, sign masked for floats, are non-zero; NaN is invalid).
    weights : Array or None
        2-D view of float32/float64 weights broadcast to the scores' shape (strides may be 0).
    label_weights : array of float64 or None
        One factor per column, multiplied into each entry's weight.
    keys, guide : uint32 and int32 arrays
        ``mode == 1``: order-preserving keys of the sorted float32 thresholds, and the guide table:
        ``guide[g]`` counts the thresholds whose cell is below g, where the cell of a value v is
        ``clip(floor((float64(v) - guide_lo) * guide_scale), 0, G - 1)``.
    mode : int
        0: Keras' bucket formula for T evenly spaced thresholds (clip to [0, 1],
        ``b = ceil(fl32(p * fl32(T - 1))) - 1``, ``max(b, 0)`` when ``epsilon``); 1: strict ``>`` against
        the sorted thresholds, no clipping.
    n_thresholds : int
        T; the histograms have T + 1 bins: bin c holds the entries that exceed exactly the first c
        thresholds.
    top_k : int
        0, or keep only the top_k scores of each row (ties: lowest column first); the others exceed nothing.
    class_id : int
        -1, or the only column counted (top_k still ranks across the whole row).
    per_column : bool
        One histogram per counted column (multi-label AUC) instead of one for all.
    from_logits : bool
        Apply the sigmoid (in float64, then rounded to float32) to the scores first.
    out_pos, out_neg : (H, T + 1) int64 (unweighted) or float64 (weighted) arrays, accumulated into.
    invalid : uint64 array of 3
        Counts of NaN scores, NaN labels, negative or NaN weights.
    """
    s = scores.data
    n_rows, n_cols_all = s.shape
    col0, n_cols = (0, n_cols_all) if class_id < 0 else (int(class_id), 1)
    if n_rows * n_cols == 0:
        return
    weighted = weights is not None
    w = weights.data if weighted else np.ones((1, 1), np.float64)
    if not weighted:
        w = np.lib.stride_tricks.as_strided(w, (n_rows, n_cols_all), (0, 0))
    lw = label_weights if label_weights is not None else np.ones(1, np.float64)
    l_mask, l_nan = _LABEL_RULES.get(labels.kind, (_ALL, _INT64_MAX))  # integers: never NaN
    parts = n_parts(n_rows * n_cols)
    flat = _flat_views(scores, labels.data, w, weighted, class_id, n_cols_all, per_column, top_k, from_logits)
    if flat is not None and label_weights is None:
        s1, l1, w1 = flat
        if l1.dtype == np.uint64:
            l1 = l1.view(np.int64)
        bad = _flat_histogram(s1, l1, _i64(l_mask), _i64(l_nan), w1, weighted, mode, n_thresholds,
                              np.float32(max(n_thresholds - 1, 0)), bool(epsilon), keys, guide, np.float64(guide_lo),
                              np.float64(guide_scale), out_pos, out_neg, parts)
        invalid[:3] += bad.astype(np.uint64)
        return
    bad = run(_histogram, parts, s, kind_code(scores.kind), labels.data, _i64(l_mask), _i64(l_nan),
              w, weighted, lw, label_weights is not None, col0, n_cols, mode, n_thresholds,
              np.float32(max(n_thresholds - 1, 0)), bool(epsilon), keys, guide, np.float64(guide_lo),
              np.float64(guide_scale), int(top_k), bool(per_column), bool(from_logits), out_pos, out_neg)
    invalid[:3] += bad.astype(np.uint64)


def _flat_views(scores, lab, w, weighted, class_id, n_cols_all, per_column, top_k, from_logits):
    """1-D views of (scores, labels, weights) when the batch is one flat stream of float32/float64 scores."""
    if per_column or top_k or from_logits or scores.kind not in ("f4", "f8"):
        return None
    s = scores.data
    if class_id >= 0 or n_cols_all == 1:
        c = max(class_id, 0)
        if n_cols_all == 1 and s.flags.c_contiguous and lab.flags.c_contiguous:
            return s.reshape(-1), lab.reshape(-1), w[:, 0]  # contiguous 1-D: the loops vectorise their loads
        return s[:, c], lab[:, c], w[:, c]
    if s.flags.c_contiguous and lab.flags.c_contiguous and (not weighted or w.flags.c_contiguous):
        return s.reshape(-1), lab.reshape(-1), (w.reshape(-1) if weighted else w[0, :1])
    return None


def _flat_histogram(s, lab, l_mask, l_nan, w, weighted, mode, n_thresholds, scale, epsilon, keys, guide, guide_lo,
                    guide_scale, out_pos, out_neg, parts):
    """The common case, one flat stream (no top_k, no per-label histograms): one tight loop per thread."""
    first = 1 if epsilon else 0
    if weighted:
        hist, bad = run(_flat_sums, parts, s, lab, l_mask, l_nan, w, mode, n_thresholds + 1, scale, first, keys,
                        guide, guide_lo, guide_scale)
    else:
        hist, bad = run(_flat_counts, parts, s, lab, l_mask, l_nan, mode, n_thresholds + 1, scale, first, keys,
                        guide, guide_lo, guide_scale)
    out_pos[0] += hist[:n_thresholds + 1]
    out_neg[0] += hist[n_thresholds + 1:]
    return bad


@kernel()
def _flat_counts(s, lab, l_mask, l_nan, mode, n_bins, scale, first, keys, guide, guide_lo, guide_scale,
                 parts):
    n = s.size
    hist = np.zeros((parts, 2 * n_bins), np.int64)
    bad = np.zeros((parts, 3), np.int64)
    per = (n + parts - 1) // parts
    for part in prange(parts):
        lo = part * per
        hi = min(n, lo + per)
        # Views, not bounds, and a histogram the loop allocates itself: LLVM then knows nothing aliases it and
        # drops the negative-index checks (a 2-4x difference on this loop).
        local, b0, b1 = _part_counts(s[lo:hi], lab[lo:hi], l_mask, l_nan, mode, n_bins, scale, first, keys,
                                     guide, guide_lo, guide_scale)
        hist[part] = local
        bad[part, 0] = b0
        bad[part, 1] = b1
    return hist.sum(axis=0), bad.sum(axis=0)


@kernel()
def _flat_sums(s, lab, l_mask, l_nan, w, mode, n_bins, scale, first, keys, guide, guide_lo, guide_scale,
               parts):
    n = s.size
    hist = np.zeros((parts, 2 * n_bins), np.float64)
    bad = np.zeros((parts, 3), np.int64)
    per = (n + parts - 1) // parts
    for part in prange(parts):
        lo = part * per
        hi = min(n, lo + per)
        local, b0, b1, b2 = _part_sums(s[lo:hi], lab[lo:hi], l_mask, l_nan, w[lo:hi], mode, n_bins, scale, first,
                                       keys, guide, guide_lo, guide_scale)
        hist[part] = local
        bad[part, 0] = b0
        bad[part, 1] = b1
        bad[part, 2] = b2
    return hist.sum(axis=0), bad.sum(axis=0)


@njit(cache=True)
def _even_fast(p, scale, first):
    """Keras' bucket formula on a float32 p (no -ftz on the CPU: a subnormal p > 0 gives ceil(...) = 1)."""
    if p < np.float32(0.0):
        p = np.float32(0.0)
    elif p > np.float32(1.0):
        p = np.float32(1.0)
    b = np.int64(np.ceil(p * scale))
    return first if b < first else b  # >= 0: callers index with it as unsigned (no negative-index check)


@njit(cache=True)
def _part_counts(s, lab, l_mask, l_nan, mode, n_bins, scale, first, keys, guide, guide_lo, guide_scale):
    # Four copies of one loop, so that each compiles without per-element tests of loop-invariant choices:
    # integer labels need no NaN test and no sign mask (a 2x difference on this loop).
    local = np.zeros(2 * n_bins, np.int64)
    nan_s = 0
    nan_l = 0
    int_labels = l_mask == -1 and l_nan == _INT64_MAX
    if mode == 0 and int_labels:
        for i in range(s.size):
            p = np.float32(s[i])
            if p != p:
                nan_s += 1
            else:
                local[np.uint64((0 if lab[i] != 0 else n_bins) + _even_fast(p, scale, first))] += 1
    elif mode == 0:
        for i in range(s.size):
            p = np.float32(s[i])
            lbits = np.int64(lab[i]) & l_mask
            if p != p:
                nan_s += 1
            elif lbits > l_nan:
                nan_l += 1
            else:
                local[np.uint64((0 if lbits != 0 else n_bins) + _even_fast(p, scale, first))] += 1
    elif int_labels:
        for i in range(s.size):
            p = np.float32(s[i])
            if p != p:
                nan_s += 1
            else:
                b = _search_bin(p, _f32_bits(p), keys, guide, guide_lo, guide_scale)
                local[np.uint64((0 if lab[i] != 0 else n_bins) + b)] += 1
    else:
        for i in range(s.size):
            p = np.float32(s[i])
            lbits = np.int64(lab[i]) & l_mask
            if p != p:
                nan_s += 1
            elif lbits > l_nan:
                nan_l += 1
            else:
                b = _search_bin(p, _f32_bits(p), keys, guide, guide_lo, guide_scale)
                local[np.uint64((0 if lbits != 0 else n_bins) + b)] += 1
    return local, nan_s, nan_l


@njit(cache=True)
def _part_sums(s, lab, l_mask, l_nan, w, mode, n_bins, scale, first, keys, guide, guide_lo, guide_scale):
    local = np.zeros(2 * n_bins, np.float64)
    nan_s = 0
    nan_l = 0
    bad_w = 0
    for i in range(s.size):
        p = np.float32(s[i])
        lbits = np.int64(lab[i]) & l_mask
        wt = np.float64(w[i])
        if p != p:
            nan_s += 1
        elif lbits > l_nan:
            nan_l += 1
        elif not wt >= 0.0:
            bad_w += 1
        else:
            if mode == 0:
                b = _even_fast(p, scale, first)
            else:
                b = _search_bin(p, _f32_bits(p), keys, guide, guide_lo, guide_scale)
            local[np.uint64((0 if lbits != 0 else n_bins) + b)] += wt
    return local, nan_s, nan_l, bad_w


@njit(cache=True)
def _f32_bits(x):
    return np.int64(np.float32(x).view(np.uint32))


@njit(cache=True)
def _half_bits(h):
    """IEEE binary16 word -> binary32 bits (exact; the same routine as gm_half_to_float)."""
    h = np.int64(h)
    sign = (h & 0x8000) << 16
    exp = (h >> 10) & 0x1F
    man = h & 0x3FF
    if exp == 0x1F:
        return sign | 0x7F800000 | (man << 13)
    if exp == 0:
        if man == 0:
            return sign
        f = np.float32(man) * np.float32(5.9604644775390625e-08)
        return sign | _f32_bits(f)
    return sign | ((exp + 112) << 23) | (man << 13)


@njit(cache=True)
def _score_bits(s, r, c, kind, from_logits):
    """Exact float32 bits (as int64) of a score, or of its sigmoid with ``from_logits``."""
    v = s[r, c]
    if kind == KIND_F16:
        bits = _half_bits(v)
    elif kind == KIND_BF16:
        bits = np.int64(v) << 16
    else:
        bits = _f32_bits(v)
    if from_logits:
        if kind == KIND_PLAIN:
            x = np.float64(v)
        else:
            x = np.float64(np.uint32(bits).view(np.float32))
        bits = _f32_bits(1.0 / (1.0 + np.exp(-x)))
    return bits


@njit(cache=True)
def _key(bits):
    """Order-preserving key of float32 bits (int64 in [0, 2^32)): -0 == +0, negatives reversed."""
    b = bits if (bits & 0x7FFFFFFF) != 0 else np.int64(0)
    return b ^ (((b >> 31) * 0x7FFFFFFF) | 0x80000000)


@njit(cache=True)
def _even_bin(bits, scale, epsilon):
    """Keras' bucket formula from float32 bits (the generic path): bin = b + 1, see the kernel's th_even_bin."""
    p = np.uint32(bits).view(np.float32)
    if p < np.float32(0.0):
        p = np.float32(0.0)
    elif p > np.float32(1.0):
        p = np.float32(1.0)
    b = np.int64(np.ceil(p * scale)) - 1
    if 0 < bits < 0x00800000 and b < 0:  # a positive subnormal score is > 0 (bucket 0)
        b = 0
    if epsilon and b < 0:
        b = 0
    return b + 1


@njit(cache=True)
def _search_bin(p, bits, keys, guide, guide_lo, guide_scale):
    """Thresholds exceeded (strict >): the guide cell of p in value (float64, the host's map), then a search of
    the keys inside the cell. Indices are unsigned so that Numba emits no negative-index checks."""
    n_guide = guide.size - 1
    x = (np.float64(p) - guide_lo) * guide_scale
    top = np.float64(n_guide - 1)
    if not x > 0.0:  # clip(floor(x), 0, G - 1), as the kernel's th_guide_cell
        x = 0.0
    if x > top:
        x = top
    cell = np.uint64(np.int64(x))
    key = _key(bits)
    lo = np.int64(guide[cell])
    hi = np.int64(guide[cell + np.uint64(1)])
    while hi - lo > 1:  # rare: most cells hold at most one threshold
        mid = (lo + hi) >> 1
        if np.int64(keys[np.uint64(mid)]) < key:
            lo = mid + 1
        else:
            hi = mid
    # last step without a branch (keys[T] is a sentinel, so keys[lo] is readable when lo == T)
    return lo + (np.int64(hi > lo) & np.int64(np.int64(keys[np.uint64(lo)]) < key))


@njit(cache=True)
def _kept_mask(s, r, kind, top_k, kept):
    """Top-k set of row ``r`` into ``kept`` (stable by descending score: ties keep the lowest column)."""
    n = s.shape[1]
    neg = np.empty(n, np.int64)
    for q in range(n):
        neg[q] = -_key(_score_bits(s, r, q, kind, False))
    order = np.argsort(neg, kind="mergesort")
    kept[:] = False
    for q in range(min(top_k, n)):
        kept[order[q]] = True


@kernel()
def _histogram(s, kind, lab, l_mask, l_nan, w, weighted, lw, has_lw, col0, n_cols, mode, n_thresholds, scale,
               epsilon, keys, guide, guide_lo, guide_scale, top_k, per_column, from_logits, out_pos, out_neg, parts):
    n_rows, n_cols_all = s.shape
    n_bins = n_thresholds + 1
    n_hist = n_cols if per_column else 1
    hist = np.zeros((parts, 2, n_hist, n_bins), out_pos.dtype)
    bad = np.zeros((parts, 3), np.int64)
    per_part = (n_rows + parts - 1) // parts
    for part in prange(parts):
        r0 = part * per_part
        r1 = min(n_rows, r0 + per_part)
        kept = np.ones(n_cols_all, np.bool_)
        long_rows = top_k > 0 and n_cols_all > 64
        for r in range(r0, r1):
            if long_rows:
                _kept_mask(s, r, kind, top_k, kept)
            for j in range(n_cols):
                c = col0 + j
                bits = _score_bits(s, r, c, kind, from_logits)
                if (bits & 0x7FFFFFFF) > 0x7F800000:
                    bad[part, 0] += 1
                    continue
                lbits = np.int64(lab[r, c]) & l_mask
                if lbits > l_nan:
                    bad[part, 1] += 1
                    continue
                wt = 1.0
                if weighted:
                    wt = np.float64(w[r, c])
                    if has_lw:
                        wt *= lw[c]
                    if not wt >= 0.0:
                        bad[part, 2] += 1
                        continue
                in_top = True
                if top_k > 0:
                    if long_rows:
                        in_top = kept[c]
                    else:
                        k = _key(bits)
                        rank = 0
                        for q in range(n_cols_all):
                            kq = _key(_score_bits(s, r, q, kind, False))
                            if kq > k or (kq == k and q < c):
                                rank += 1
                        in_top = rank < top_k
                if not in_top:
                    b = 0
                elif mode == 0:
                    b = _even_bin(bits, scale, epsilon)
                else:
                    b = _search_bin(np.uint32(bits).view(np.float32), bits, keys, guide, guide_lo, guide_scale)
                h = j if per_column else 0
                side = 0 if lbits != 0 else 1
                if weighted:
                    hist[part, side, h, b] += wt
                else:
                    hist[part, side, h, b] += 1
    for part in range(parts):
        for h in range(n_hist):
            for b in range(n_bins):
                out_pos[h, b] += hist[part, 0, h, b]
                out_neg[h, b] += hist[part, 1, h, b]
    return bad.sum(axis=0)


