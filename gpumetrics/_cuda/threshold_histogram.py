"""Launcher for kernels/threshold_histogram.cu (mirror: gpumetrics/_cpu/threshold_histogram.py).

One launch adds a batch to the per-bucket positive/negative histogram of a thresholded binary metric. The
arguments are described once, in :func:`gpumetrics._cpu.threshold_histogram.threshold_histogram`.
"""
from __future__ import annotations

import itertools

import numpy as np

from gpumetrics._cuda._launch import grid_for
from gpumetrics._cuda._runtime import get_runtime

# Scores are read as stored; labels as raw unsigned words of their size (a label is positive when its bits,
# sign masked for floats, are non-zero); weights: none, float32 or float64.
SCORE_TYPES = {"f2": "gm_half", "bf2": "gm_bfloat16", "f4": "float", "f8": "double"}
LABEL_TYPES = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}
WEIGHT_TYPES = {None: "gm_noweight", "f4": "float", "f8": "double"}

KERNELS = tuple(f"threshold_histogram<{s}, {lab}, {w}>" for s, lab, w in itertools.product(
    SCORE_TYPES.values(), LABEL_TYPES.values(), WEIGHT_TYPES.values()))

BLOCK = 256
# Elements one block adds into its 32-bit shared counters between flushes to the int64 output. A bin can hold
# at most two intervals' worth (a thread may run one chunk ahead of a flush), so 2^30 keeps every counter
# below 2^32. A module constant so tests can shrink it and run the flush path on tiny inputs.
FLUSH_INTERVAL = 1 << 30
# Shared memory a block may use for its two histograms; larger histograms use global atomics.
SHARED_LIMIT = 48 * 1024


def _elem_strides(a) -> tuple[int, int]:
    item = a.dtype.itemsize
    return a.strides[0] // item, a.strides[1] // item


def threshold_histogram(scores, labels, weights, label_weights, keys, guide, mode, n_thresholds, epsilon,
                        top_k, class_id, per_column, from_logits, guide_lo, guide_scale, out_pos, out_neg,
                        invalid) -> None:
    """Add one batch to ``out_pos`` / ``out_neg`` (see the CPU mirror for the arguments)."""
    s, lab = scores.data, labels.data
    n_rows, n_cols_all = int(s.shape[0]), int(s.shape[1])
    col0, n_cols = (0, n_cols_all) if class_id < 0 else (int(class_id), 1)
    total = n_rows * n_cols
    if total == 0:
        return
    w_kind = None if weights is None else weights.kind
    name = (f"threshold_histogram<{SCORE_TYPES[scores.kind]}, {LABEL_TYPES[lab.dtype.itemsize]}, "
            f"{WEIGHT_TYPES[w_kind]}>")
    kernel = get_runtime().kernel("threshold_histogram", name)
    n_bins = n_thresholds + 1
    n_hist = (n_cols if per_column else 1) * n_bins
    acc_bytes = 4 if weights is None else 8
    shared = 2 * n_hist * acc_bytes
    use_shared = shared <= SHARED_LIMIT
    block = BLOCK
    no_weight, no_label_weight = _placeholders()
    w = weights.data if weights is not None else no_weight
    w_rs, w_cs = _elem_strides(w) if weights is not None else (0, 0)
    lw = label_weights if label_weights is not None else no_label_weight
    l_mask, l_nan = _label_rule(labels.kind)
    flush_iters = max(1, FLUSH_INTERVAL // block) if weights is None else 1 << 62
    s_rs, s_cs = _elem_strides(s)
    l_rs, l_cs = _elem_strides(lab)
    kernel((grid_for(total, block),), (block,),
           (s, np.int64(s_rs), np.int64(s_cs),
            lab, np.int64(l_rs), np.int64(l_cs), np.uint64(l_mask), np.uint64(l_nan),
            w, np.int64(w_rs), np.int64(w_cs),
            lw, np.int32(label_weights is not None),
            np.int64(n_rows), np.int32(n_cols_all), np.int32(col0), np.int32(n_cols),
            np.int32(mode), np.int32(n_thresholds), np.float32(max(n_thresholds - 1, 0)), np.int32(bool(epsilon)),
            keys, guide, np.int32(guide.size - 1), np.float64(guide_lo), np.float64(guide_scale),
            np.int32(top_k), np.int32(bool(per_column)), np.int32(bool(from_logits)),
            out_pos, out_neg, np.int32(use_shared), np.int64(flush_iters), invalid),
           shared_mem=shared if use_shared else 0)


_placeholder_cache: dict = {}


def _placeholders():
    """Never-read stand-ins for absent weight / label-weight arguments: allocated once per runtime and device
    (not per launch, so an update stays allocation-free, e.g. inside a CUDA graph capture)."""
    runtime = get_runtime()
    xp = runtime.xp
    device = xp.cuda.Device().id if hasattr(xp, "cuda") else 0
    key = (id(runtime), device)
    entry = _placeholder_cache.get(key)
    if entry is None or entry[0] is not runtime:
        entry = (runtime, xp.zeros(1, np.uint8), xp.zeros(1, np.float64))
        _placeholder_cache[key] = entry
    return entry[1], entry[2]


def _label_rule(kind: str) -> tuple[int, int]:
    """(mask, nan_above): a label is positive when ``bits & mask`` is non-zero, NaN when it is > nan_above."""
    rules = {"f2": (0x7FFF, 0x7C00), "bf2": (0x7FFF, 0x7F80), "f4": (0x7FFFFFFF, 0x7F800000),
             "f8": (0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000)}
    return rules.get(kind, (0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF))
