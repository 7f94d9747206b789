"""Exact (unbinned) ranking metrics: scikit-learn's ``roc_auc_score`` and ``average_precision_score``.

Every distinct score is a threshold. The scores are sorted once on the data's device (CuPy's device sort on
the GPU, numpy's O(n log n) sort on the CPU); tied scores form one step of the curve, as in scikit-learn.

Memory, stated up front: besides the inputs these functions hold about 40 bytes per element at their peak
(the int64 sort order, the gathered scores, labels and weights, and two float64 cumulative sums). For very
large inputs use the binned :func:`gpumetrics.functional.threshold.roc_auc` (O(T) memory) instead.

Labels must be 0 or 1 (any other value, or NaN, raises ``ValueError``); scores must not be NaN;
weights must be non-negative.
"""
from __future__ import annotations

import numpy as np

from gpumetrics import _dispatch
from gpumetrics._dtypes import FLOAT_KINDS
from gpumetrics._state import array_module


def _host_scalar(x) -> float:
    from gpumetrics.metrics.base import _to_host  # noqa: PLC0415

    return float(_to_host(x)) if not isinstance(x, (float, int, np.generic)) else float(x)


def _prepare(y_true, y_score, sample_weight):
    device = _dispatch.common_device(y_true=y_true, y_score=y_score, sample_weight=sample_weight)
    xp = array_module(device)
    yt = _dispatch.as_array(y_true, device, "y_true")
    ys = _dispatch.as_array(y_score, device, "y_score")
    s = ys.data
    if ys.kind == "f2":
        s = s.view(np.float16)
    elif ys.kind == "bf2":
        s = (s.astype(np.uint32) << 16).view(np.float32)
    s = s.reshape(-1)
    y = yt.data.view(np.float16) if yt.kind == "f2" else yt.data
    y = y.reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"y_true and y_score must have the same number of elements ({y.size} vs {s.size})")
    if ys.kind not in FLOAT_KINDS:
        s = s.astype(np.float64)
    w = None
    if sample_weight is not None:
        sw = _dispatch.as_array(sample_weight, device, "sample_weight")
        w = xp.broadcast_to(sw.data.astype(np.float64), tuple(yt.shape)).reshape(-1)
        if _host_scalar((~(w >= 0)).sum()):
            raise ValueError("sample_weight values are negative or NaN")
    if _host_scalar(xp.isnan(s).sum()):
        raise ValueError("y_score values are NaN")
    if _host_scalar(((y != 0) & (y != 1)).sum()):
        raise ValueError("the exact mode needs binary labels: y_true values must be 0 or 1")
    return xp, y, s, w


def _clf_curve(xp, y, s, w):
    """Cumulative (fps, tps) at each distinct score, scores in decreasing order (scikit-learn's rule)."""
    # Ascending sort, read backwards: the order among tied scores does not matter (ties form one step).
    order = xp.argsort(s)[::-1]
    s_sorted = s[order]
    pos = y[order].astype(np.float64)
    weight = None if w is None else w[order]
    distinct = xp.nonzero(xp.diff(s_sorted))[0]
    last = xp.asarray(np.array([s_sorted.size - 1]))
    idx = xp.concatenate([distinct, last])
    tps = xp.cumsum(pos if weight is None else pos * weight)[idx]
    fps = xp.cumsum((1.0 - pos) if weight is None else (1.0 - pos) * weight)[idx]
    return fps, tps


def exact_roc_auc(y_true, y_score, *, sample_weight=None):
    """scikit-learn's ``roc_auc_score`` for binary labels: trapezoids through every distinct score.

    Raises ``ValueError`` when only one class is present (the area is undefined), as scikit-learn does.
    Returns a 0-d float64 array on the data's device.
    """
    xp, y, s, w = _prepare(y_true, y_score, sample_weight)
    if s.size == 0:
        raise ValueError("y_true is empty; ROC AUC is not defined")
    fps, tps = _clf_curve(xp, y, s, w)
    zero = xp.zeros(1, np.float64)
    fps, tps = xp.concatenate([zero, fps]), xp.concatenate([zero, tps])
    if _host_scalar(fps[-1]) <= 0 or _host_scalar(tps[-1]) <= 0:
        raise ValueError("Only one class is present in y_true. ROC AUC score is not defined in that case.")
    fpr, tpr = fps / fps[-1], tps / tps[-1]
    return ((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2.0).sum()


def exact_average_precision(y_true, y_score, *, sample_weight=None):
    """scikit-learn's ``average_precision_score``: ``sum_n (R_n - R_{n-1}) P_n`` over distinct scores.

    Returns a 0-d float64 array on the data's device (NaN-free; 0 without positives, where scikit-learn
    warns and returns 0 too).
    """
    xp, y, s, w = _prepare(y_true, y_score, sample_weight)
    if s.size == 0:
        raise ValueError("y_true is empty; average precision is not defined")
    fps, tps = _clf_curve(xp, y, s, w)
    ps = tps + fps
    precision = xp.where(ps > 0, tps / xp.where(ps > 0, ps, 1.0), 0.0)
    total = tps[-1]
    gain = xp.diff(xp.concatenate([xp.zeros(1, np.float64), tps]))
    return xp.where(total > 0, (gain * precision).sum() / xp.where(total > 0, total, 1.0), 0.0)
