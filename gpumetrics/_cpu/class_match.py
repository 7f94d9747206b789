"""Numba class_match (mirror of gpumetrics/_cuda/class_match.py and kernels/class_match.cu).

For each row of scores: the target class (sparse id, or first argmax of a one-hot row), whether it matches
(argmax, Keras' in_top_k with every boundary tie a hit, or membership in the first k sorted ids), and
    total += scale * w * match        count += scale * w
invalid[0] counts rows with non-finite scores, invalid[1] bad class ids / non-finite one-hot rows,
invalid[2] non-finite weights. Invalid rows add nothing.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from gpumetrics._cpu._common import kernel, kind_code, load_float, n_parts, run

MODE_ARGMAX, MODE_TOP_K, MODE_SORTED_IDS = range(3)


@njit(inline="always", cache=True)
def _argmax(p, kind, row, stride, n):
    """(first index of the row maximum, all entries finite)."""
    best = 0
    best_value = load_float(p, row, kind)
    finite = np.isfinite(best_value)
    for j in range(1, n):
        v = load_float(p, row + j * stride, kind)
        finite = finite and np.isfinite(v)
        if v > best_value:
            best_value = v
            best = j
    return best, finite


@kernel()
def _class_match(s, s_kind, s_sr, s_sc, class_stride, n_classes, t, t_kind, t_sr, t_sc, t_class_stride,
                 target_one_hot, w, w_kind, w_sr, w_sc, has_w, rows, cols, mode, k, parts):
    n = rows * cols
    out = np.zeros((parts, 5))  # per part: sum(w*match), sum(w), bad scores, bad target, bad w
    for p in prange(parts):
        sum_wm = 0.0
        sum_w = 0.0
        bad_s = 0
        bad_t = 0
        bad_w = 0
        for e in range(n * p // parts, n * (p + 1) // parts):
            r = e // cols
            c = e - r * cols
            s_row = r * s_sr + c * s_sc
            t_row = r * t_sr + c * t_sc
            wv = load_float(w, r * w_sr + c * w_sc, w_kind) if has_w else 1.0
            if not np.isfinite(wv):
                bad_w += 1
                continue
            if target_one_hot:
                cls, finite = _argmax(t, t_kind, t_row, t_class_stride, n_classes)
                if not finite:
                    bad_t += 1
                    continue
            else:
                ident = load_float(t, t_row, t_kind)
                if not (ident >= 0.0 and ident < n_classes and ident == np.floor(ident)):
                    bad_t += 1
                    continue
                cls = np.int64(ident)
            hit = False
            finite = True
            if mode == MODE_ARGMAX:
                best, finite = _argmax(s, s_kind, s_row, class_stride, n_classes)
                hit = best == cls
            elif mode == MODE_TOP_K:
                mine = load_float(s, s_row + cls * class_stride, s_kind)
                greater = 0
                for j in range(n_classes):
                    v = load_float(s, s_row + j * class_stride, s_kind)
                    finite = finite and np.isfinite(v)
                    if v > mine:
                        greater += 1
                hit = greater < k
            else:
                for j in range(k):
                    v = load_float(s, s_row + j * class_stride, s_kind)
                    finite = finite and np.isfinite(v)
                    hit = hit or v == cls
            if not finite:
                bad_s += 1
                continue
            if hit:
                sum_wm += wv
            sum_w += wv
        out[p, 0] = sum_wm
        out[p, 1] = sum_w
        out[p, 2] = bad_s
        out[p, 3] = bad_t
        out[p, 4] = bad_w
    return out


def class_match(scores, class_stride, n_classes, target, target_class_stride, target_one_hot, w, rows, cols,
                mode, k, scale, total, count, invalid) -> None:
    """total += scale * sum(w * match(row)); count += scale * sum(w); see kernels/class_match.cu."""
    n = rows * cols
    if n == 0:
        return
    w_ = w if w is not None else scores
    parts = n_parts(n * min(max(1, n_classes), 64) // 4)  # a row costs about C element reads
    out = run(_class_match, parts, scores.base, kind_code(scores.kind), scores.stride_r, scores.stride_c,
              class_stride, n_classes, target.base, kind_code(target.kind), target.stride_r, target.stride_c,
              target_class_stride, bool(target_one_hot), w_.base, kind_code(w_.kind), w_.stride_r,
              w_.stride_c, w is not None, rows, cols, mode, k)
    total += scale * out[:, 0].sum()
    count += scale * out[:, 1].sum()
    invalid[:3] += out[:, 2:].sum(axis=0).astype(np.uint64)
