"""Thresholded binary metrics as stages: thresholds -> plan, batch -> histogram, histogram -> counts -> value.

Every thresholded binary metric of Keras (TP/FP/TN/FN, Precision, Recall, AUC, the four "X at Y") is a
function of the confusion counts at T thresholds. They are computed here from one histogram per batch:
bin ``c`` (0..T) holds the positive and the negative entries that exceed exactly the first ``c`` thresholds,
so ``TP[i] = sum(pos[c] for c > i)`` is a suffix sum. The histogram costs one pass over the data, O(n + T)
(evenly spaced thresholds) or O(n log T) (any other list); the counts cost O(T).

Threshold rule (Keras 3.15, exactly):

- *Evenly spaced* thresholds (``T >= 3`` and ``allclose(t, arange(T) / (T - 1))``; AUC's default; the
  "X at Y" metrics) use Keras' bucket formula in float32: ``p = clip(fl32(score), 0, 1)``,
  ``b = ceil(fl32(p * fl32(T - 1))) - 1`` and, for AUC's epsilon thresholds, ``b = max(b, 0)``; the score
  exceeds thresholds ``0..b``. The threshold values themselves are not compared.
- Any other list: a score exceeds ``t_i`` when ``fl32(score) > fl32(t_i)`` (strict, no clipping).

Stages: :func:`make_plan` (thresholds -> a plan), :func:`_validate_inputs` and :func:`_update` (one batch into
the histogram state), :func:`confusion_counts` (state -> TP, FP, TN, FN), and the ``*_from_counts``
functions (Keras' result formulas, in the compute dtype). Public one-shot functions: :func:`roc_auc`,
:func:`pr_auc`, :func:`auc`, :func:`roc_curve`, :func:`precision_recall_curve`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gpumetrics import _dispatch
from gpumetrics._dispatch import Array
from gpumetrics._dtypes import FLOAT_KINDS
from gpumetrics.functional._common import divide_no_nan

EPSILON = 1e-7  # keras.backend.epsilon()
NEG_INF = -1e10  # Keras' stand-in for -inf in top_k filtering
INVALID_REASONS = ("y_pred values are NaN", "y_true values are NaN", "sample_weight values are negative or NaN")
GUIDE_MAX = 8192

# ----------------------------------------------------------------------------------------------- plans


@dataclass(frozen=True, eq=False)
class Plan:
    """How a metric's thresholds turn a score into a histogram bin.

    ``thresholds`` are in the metric's reporting order (the user's order for TP/FP/Precision/Recall, sorted
    for AUC). ``even`` selects Keras' bucket formula; otherwise ``keys`` are the order-preserving keys of the
    sorted float32 thresholds (plus a sentinel 0xffffffff), ``guide`` a table of uniform value cells over them (``guide[g]`` = thresholds
    whose cell ``clip(floor((float64(t) - guide_lo) * guide_scale), 0, G - 1)`` is below g), and
    ``order[u]`` is the sorted position of reported threshold ``u``.
    """

    thresholds: tuple
    even: bool
    epsilon: bool
    order: np.ndarray | None = None
    keys: np.ndarray = field(default_factory=lambda: np.zeros(1, np.uint32))
    guide: np.ndarray = field(default_factory=lambda: np.zeros(2, np.int32))
    guide_lo: float = 0.0
    guide_scale: float = 0.0

    @property
    def n(self) -> int:
        return len(self.thresholds)


def is_evenly_distributed(thresholds) -> bool:
    """Keras' test: at least 3 thresholds, allclose to ``arange(T) / (T - 1)`` (rtol 1e-5, atol 1e-7)."""
    t = np.asarray(thresholds, dtype=np.float64)
    if t.size < 3:
        return False
    even = np.arange(t.size, dtype=np.float32) / (t.size - 1)
    return bool(np.allclose(t, even, atol=EPSILON))


def float_keys(values) -> np.ndarray:
    """Order-preserving uint32 keys of float32 values: ``a > b`` exactly when ``key(a) > key(b)``."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = np.where((bits & 0x7FFFFFFF) == 0, np.uint64(0), bits)  # -0 == +0
    keys = np.where(bits & 0x80000000, 0xFFFFFFFF - bits, bits | 0x80000000)
    return keys.astype(np.uint32)


def make_plan(thresholds, even: bool, epsilon: bool = False) -> Plan:
    """A plan for ``thresholds`` (Python floats in reporting order); ``even`` as Keras decided it."""
    thresholds = tuple(float(t) for t in thresholds)
    if even:
        return Plan(thresholds, True, bool(epsilon))
    t32 = np.asarray(thresholds, dtype=np.float32)
    if np.isnan(t32).any():
        raise ValueError("thresholds must not be NaN")
    sort = np.argsort(t32, kind="stable")
    order = np.empty_like(sort)
    order[sort] = np.arange(sort.size)
    t_sorted = t32[sort]
    keys = float_keys(t_sorted)
    # Uniform value cells over the bulk of the thresholds (1/64 of them at each end may fall in the end
    # cells), about two cells per threshold; the cell map runs in float64 here and in the kernels alike.
    finite = t_sorted[np.isfinite(t_sorted)].astype(np.float64)
    n_guide = int(min(GUIDE_MAX, max(64, 2 * t_sorted.size)))
    lo = hi = 0.0
    if finite.size:
        lo, hi = float(finite[0]), float(finite[-1])
        k = finite.size // 64
        t_lo, t_hi = float(finite[k]), float(finite[finite.size - 1 - k])
        if 4 * (t_hi - t_lo) < hi - lo:  # a few far outliers: spread the cells over the bulk instead
            lo, hi = t_lo, t_hi
    scale = n_guide / (hi - lo) if hi > lo else 0.0
    if not np.isfinite(scale):
        scale = 0.0
    cells = guide_cells(t_sorted, lo, scale, n_guide)
    guide = np.searchsorted(cells, np.arange(n_guide + 1), side="left").astype(np.int32)
    identity = bool(np.array_equal(sort, np.arange(sort.size)))
    keys = np.append(keys, np.uint32(0xFFFFFFFF))  # sentinel read by the branch-free last search step
    return Plan(thresholds, False, False, None if identity else order, keys, guide, lo, scale)


def guide_cells(values, lo: float, scale: float, n_guide: int) -> np.ndarray:
    """Guide cell of float32 values: ``clip(floor((float64(v) - lo) * scale), 0, n_guide - 1)`` (monotone)."""
    with np.errstate(invalid="ignore", over="ignore"):
        x = (np.asarray(values, np.float32).astype(np.float64) - lo) * scale
    cells = np.where(x > 0, np.minimum(x, n_guide - 1), 0)
    return np.nan_to_num(cells, nan=0).astype(np.int64)


# ----------------------------------------------------------------------------------------------- inputs


def _align(x1, x2, expand_rank_1: bool = True):
    """Keras' squeeze_or_expand_to_same_rank on arrays (reshapes only, views)."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2.reshape(x2.shape + (1,))
        else:
            x1 = x1.reshape(x1.shape[:-1])
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1.reshape(x1.shape + (1,))
        else:
            x2 = x2.reshape(x2.shape[:-1])
    return x1, x2


_LABEL_VIEW = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@dataclass
class Batch:
    """One batch as the op reads it: 2-D views (rows, columns) of scores, raw label words, weights."""

    scores: Array
    labels: Array
    weights: Array | None
    n_cols: int


def _validate_inputs(y_true, y_pred, sample_weight, device, *, top_k=None, class_id=None, multi_label=False,
                     num_labels=None, label_weights_len=None) -> Batch:
    """Convert, align (Keras rule 1.2) and check one batch; raises before any state is touched."""
    yt = _dispatch.as_array(y_true, device, "y_true")
    yp = _dispatch.as_array(y_pred, device, "y_pred")
    xp = _xp(device)
    s, lab = yp.data, yt.data
    if yp.kind not in FLOAT_KINDS:
        s = s.astype(np.float32)  # integer or bool scores: Keras casts them to float32 (one copy)
        s_kind = "f4"
    else:
        s_kind = yp.kind
    if s.ndim == 0:
        s = s.reshape(1)
    if lab.ndim == 0:
        lab = lab.reshape(1)
    s, lab = _align(s, lab)
    if tuple(s.shape) != tuple(lab.shape):
        raise ValueError(f"y_true and y_pred must have the same shape after Keras' rank alignment "
                         f"(got y_true {tuple(yt.shape)} and y_pred {tuple(yp.shape)})")
    if multi_label:
        if s.ndim != 2:
            raise ValueError(f"`y_pred` must have rank 2 when `multi_label=True`. Found rank {s.ndim}. "
                             f"Full shape received for `y_pred`: {tuple(yp.shape)}")
        if num_labels is not None and s.shape[1] != num_labels:
            raise ValueError(f"y_pred has {s.shape[1]} labels but the metric was built for {num_labels}")
    if class_id is not None:
        if s.ndim < 2:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape "
                             f"(num_samples, num_classes), found shape: {tuple(yp.shape)}")
        if not 0 <= class_id < s.shape[-1]:
            raise ValueError(f"class_id={class_id} is out of range for y_pred with {s.shape[-1]} classes")
    if top_k is not None and s.size and top_k > s.shape[-1]:
        raise ValueError(f"top_k={top_k} is larger than the last dimension of y_pred ({s.shape[-1]})")
    if label_weights_len is not None and (s.ndim == 0 or s.shape[-1] != label_weights_len):
        raise ValueError(f"label_weights has {label_weights_len} entries but y_pred's last dimension is "
                         f"{s.shape[-1] if s.ndim else 1}")

    weights = None
    if sample_weight is not None:
        sw = _dispatch.as_array(sample_weight, device, "sample_weight")
        w = _weights_as_float(sw, xp)
        w = w.reshape(tuple(w.shape) + (1,))  # Keras adds a trailing axis, then aligns with expand off
        _, w = _align(lab, w, expand_rank_1=False)
        target = tuple(s.shape) if class_id is None else tuple(s.shape[:-1]) + (1,)
        try:
            w = xp.broadcast_to(w, target)
            w = xp.broadcast_to(w, tuple(s.shape))
        except ValueError:
            raise ValueError(f"sample_weight of shape {tuple(sw.shape)} cannot be broadcast to y_pred's shape "
                             f"{target}") from None
        weights = w

    # 2-D views: (rows, last axis). top_k on 1-D input ranks across the batch (Keras' "last axis").
    shape = tuple(s.shape)
    n_cols = shape[-1] if (len(shape) >= 2 or top_k is not None) else 1
    rows = int(np.prod(shape, dtype=np.int64)) // max(n_cols, 1) if n_cols else 0
    s2 = s.reshape(rows, n_cols)
    l2 = lab.reshape(rows, n_cols)
    l2 = l2.view(_LABEL_VIEW[lab.dtype.itemsize])  # labels are read as raw words (non-zero = positive)
    w2 = None
    if weights is not None:
        w2 = Array(_reshape_2d(weights, rows, n_cols, xp), "f8" if weights.dtype == np.float64 else "f4", device)
    return Batch(Array(s2, s_kind, device), Array(l2, yt.kind, device), w2, n_cols)


def _reshape_2d(w, rows, cols, xp):
    """(rows, cols) view of a broadcast weight array; one broadcast value stays one value (stride 0)."""
    if w.ndim and rows * cols and all(st == 0 for n, st in zip(w.shape, w.strides) if n != 1):
        one = w[(slice(0, 1),) * w.ndim].reshape(1, 1)
        return xp.broadcast_to(one, (rows, cols))
    return w.reshape(rows, cols)  # a view where the strides allow, else one copy


def _weights_as_float(sw: Array, xp):
    w = sw.data
    if sw.kind in ("f4", "f8"):
        return w
    if sw.kind == "f2":
        return w.view(np.float16).astype(np.float64)
    if sw.kind == "bf2":
        return (w.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return w.astype(np.float64)


def _xp(device):
    from gpumetrics._state import array_module  # noqa: PLC0415

    return array_module(device)


# ----------------------------------------------------------------------------------------------- update


class DevicePlan:
    """A plan's small arrays on one device (cached by the metric)."""

    def __init__(self, plan: Plan, device, label_weights=None):
        xp = _xp(device)
        self.device = device
        self.keys = xp.asarray(plan.keys)
        self.guide = xp.asarray(plan.guide)
        self.label_weights = None if label_weights is None else xp.asarray(np.asarray(label_weights, np.float64))


def _update(device, batch: Batch, plan: Plan, dplan: DevicePlan, state: dict, invalid, *, top_k=None,
            class_id=None, per_column=False, from_logits=False, use_label_weights=False) -> None:
    """Add ``batch`` to the histogram ``state`` (scratch views: pos/neg counts and weights)."""
    weighted = batch.weights is not None or use_label_weights
    weights = batch.weights
    if weights is None and use_label_weights:
        xp = _xp(device)
        one = xp.ones((1, 1), np.float64)
        rows, cols = batch.scores.data.shape
        weights = Array(xp.broadcast_to(one, (rows, cols)), "f8", device)
    out_pos = state["pos_weight"] if weighted else state["pos_count"]
    out_neg = state["neg_weight"] if weighted else state["neg_count"]
    op = _dispatch.op(device, "threshold_histogram")
    op(batch.scores, batch.labels, weights, dplan.label_weights if use_label_weights else None,
       dplan.keys, dplan.guide, 0 if plan.even else 1, plan.n, plan.epsilon,
       0 if top_k is None else int(top_k), -1 if class_id is None else int(class_id), bool(per_column),
       bool(from_logits), plan.guide_lo, plan.guide_scale, out_pos, out_neg, invalid)


def state_shapes(plan: Plan, n_hist: int = 1) -> dict:
    return {"pos_count": (n_hist, plan.n + 1), "neg_count": (n_hist, plan.n + 1)}


# ----------------------------------------------------------------------------------------------- compute


def confusion_counts(state: dict, plan: Plan, xp, dtype=np.float32):
    """TP, FP, TN, FN of shape (H, T) in the plan's reporting order, cast to ``dtype``.

    Sums are exact (int64 counts plus float64 weights) until the final cast.
    """
    pos = state["pos_count"].astype(np.float64) + state["pos_weight"]
    neg = state["neg_count"].astype(np.float64) + state["neg_weight"]
    sp = xp.cumsum(pos[:, ::-1], axis=1)[:, ::-1]
    sn = xp.cumsum(neg[:, ::-1], axis=1)[:, ::-1]
    tp, fp = sp[:, 1:], sn[:, 1:]
    fn, tn = sp[:, :1] - tp, sn[:, :1] - fp
    if plan.order is not None:
        idx = xp.asarray(plan.order)
        tp, fp, tn, fn = tp[:, idx], fp[:, idx], tn[:, idx], fn[:, idx]
    return tuple(xp.ascontiguousarray(a).astype(dtype) for a in (tp, fp, tn, fn))


def auc_from_counts(tp, fp, tn, fn, xp, curve="ROC", summation_method="interpolation", multi_label=False,
                    label_weights=None):
    """Keras' AUC.result() on counts of shape (H, T) (H = labels with multi_label, else 1)."""
    dt = tp.dtype.type
    if curve == "PR" and summation_method == "interpolation":
        by_label = _pr_interpolation(tp, fp, fn, xp).sum(axis=1)
    else:
        recall = divide_no_nan(tp, tp + fn, xp)
        if curve == "ROC":
            x, y = divide_no_nan(fp, fp + tn, xp), recall
        elif curve == "PR":
            x, y = recall, divide_no_nan(tp, tp + fp, xp)
        else:  # PRGAIN
            scale = divide_no_nan(tp + fn, tn + fp, xp)
            rg = dt(1) - scale * divide_no_nan(fn, tp, xp)
            pg = dt(1) - scale * divide_no_nan(fp, tp, xp)
            rg = xp.where(tp == 0, dt(0), rg)
            pg = xp.where(tp == 0, dt(1), pg)
            x, y = xp.maximum(rg, dt(0)), pg
        if summation_method == "interpolation":
            heights = (y[:, :-1] + y[:, 1:]) / dt(2)
        elif summation_method == "minoring":
            heights = xp.minimum(y[:, :-1], y[:, 1:])
        else:
            heights = xp.maximum(y[:, :-1], y[:, 1:])
        by_label = ((x[:, :-1] - x[:, 1:]) * heights).sum(axis=1)
    if not multi_label:
        return by_label[0]
    if label_weights is None:
        return by_label.mean()
    lw = xp.asarray(np.asarray(label_weights, dtype=by_label.dtype))
    return divide_no_nan((by_label * lw).sum(), lw.sum(), xp)


def _pr_interpolation(tp, fp, fn, xp):
    """Davis & Goadrich's interpolated PR increments, Keras' closed form."""
    dt = tp.dtype.type
    dtp = tp[:, :-1] - tp[:, 1:]
    p = tp + fp
    dp = p[:, :-1] - p[:, 1:]
    slope = divide_no_nan(dtp, xp.maximum(dp, dt(0)), xp)
    intercept = tp[:, 1:] - slope * p[:, 1:]
    both = (p[:, :-1] > 0) & (p[:, 1:] > 0)
    ratio = xp.where(both, divide_no_nan(p[:, :-1], xp.maximum(p[:, 1:], dt(0)), xp), dt(1))
    safe = xp.where(both, ratio, dt(1))
    return divide_no_nan(slope * (dtp + intercept * xp.log(safe)), xp.maximum(tp[:, 1:] + fn[:, 1:], dt(0)), xp)


def curve_from_counts(tp, fp, tn, fn, xp, curve="ROC"):
    """(x, y) points of the curve at each threshold: ROC (FPR, TPR) or PR (recall, precision)."""
    recall = divide_no_nan(tp, tp + fn, xp)
    if curve == "ROC":
        return divide_no_nan(fp, fp + tn, xp), recall
    if curve == "PR":
        return recall, divide_no_nan(tp, tp + fp, xp)
    raise ValueError(f"curve points are defined for 'ROC' and 'PR', not {curve!r}")


def max_under_constraint(constrained, dependent, value, xp):
    """max(0, max_i{dependent_i : constrained_i >= fl(value)}) (Keras' X-at-Y rule)."""
    dt = constrained.dtype.type
    feasible = constrained >= dt(value)
    return xp.maximum(xp.where(feasible, dependent, dt(0)).max(), dt(0))


# ----------------------------------------------------------------------------------------------- one-shot


def _one_shot(metric_cls, y_true, y_score, sample_weight, **kwargs):
    metric = metric_cls(**kwargs)
    metric.update_state(y_true, y_score, sample_weight)
    return metric


def auc(y_true, y_score, *, sample_weight=None, num_thresholds=200, curve="ROC",
        summation_method="interpolation", thresholds=None, from_logits=False):
    """Keras' binned AUC of one batch (see :class:`gpumetrics.metrics.threshold.AUC`); a 0-d array."""
    from gpumetrics.metrics.threshold import AUC  # noqa: PLC0415

    return _one_shot(AUC, y_true, y_score, sample_weight, num_thresholds=num_thresholds, curve=curve,
                     summation_method=summation_method, thresholds=thresholds, from_logits=from_logits).result()


def roc_auc(y_true, y_score, *, sample_weight=None, num_thresholds=200, thresholds=None, exact=False):
    """Area under the ROC curve of one batch.

    ``exact=False``: Keras' binned value (``AUC(num_thresholds)``, trapezoids over T thresholds), one pass,
    O(n + T) time and O(T) memory. ``exact=True``: scikit-learn's ``roc_auc_score`` (every distinct score is
    a threshold, ties share a trapezoid), O(n log n) by a sort on the data's device; it needs about
    ``24 * n`` bytes of temporary memory (sort keys and indices, cumulative sums) besides the input.
    """
    if exact:
        from gpumetrics.functional.ranking import exact_roc_auc  # noqa: PLC0415

        return exact_roc_auc(y_true, y_score, sample_weight=sample_weight)
    return auc(y_true, y_score, sample_weight=sample_weight, num_thresholds=num_thresholds, thresholds=thresholds)


def pr_auc(y_true, y_score, *, sample_weight=None, num_thresholds=200, thresholds=None, exact=False):
    """Area under the precision-recall curve of one batch.

    ``exact=False``: Keras' ``AUC(curve="PR")`` (Davis-Goadrich interpolation over T thresholds).
    ``exact=True``: scikit-learn's ``average_precision_score`` (step-wise sum, ties grouped), by a device
    sort, O(n log n), about ``24 * n`` bytes of temporary memory.
    """
    if exact:
        from gpumetrics.functional.ranking import exact_average_precision  # noqa: PLC0415

        return exact_average_precision(y_true, y_score, sample_weight=sample_weight)
    return auc(y_true, y_score, sample_weight=sample_weight, num_thresholds=num_thresholds, thresholds=thresholds,
               curve="PR")


def roc_curve(y_true, y_score, *, sample_weight=None, num_thresholds=200, thresholds=None):
    """(fpr, tpr, thresholds) at AUC's thresholds (Keras' binning), arrays on the data's device."""
    from gpumetrics.metrics.threshold import AUC  # noqa: PLC0415

    m = _one_shot(AUC, y_true, y_score, sample_weight, num_thresholds=num_thresholds, thresholds=thresholds)
    return m.curve_points()


def precision_recall_curve(y_true, y_score, *, sample_weight=None, num_thresholds=200, thresholds=None):
    """(recall, precision, thresholds) at AUC's thresholds (Keras' binning), arrays on the data's device."""
    from gpumetrics.metrics.threshold import AUC  # noqa: PLC0415

    m = _one_shot(AUC, y_true, y_score, sample_weight, num_thresholds=num_thresholds, thresholds=thresholds,
                  curve="PR")
    return m.curve_points()
