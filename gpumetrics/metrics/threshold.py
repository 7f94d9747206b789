"""Thresholded binary metrics (Keras 3 names, signatures and results): counts at thresholds, Precision,
Recall, AUC and the four "X at Y" metrics, all from one histogram kernel.

Each metric keeps, per threshold bucket, the number (int64) and the weight (float64) of positive and
negative entries; ``result()`` turns the histogram into TP/FP/TN/FN by suffix sums and applies Keras'
formula in the compute dtype. See :mod:`gpumetrics.functional.threshold` for the exact threshold rule.

Deviations from Keras (all listed in the README): exact state (counts past 2^24 stay exact); NaN scores or
labels and negative or NaN weights are rejected (the batch is not counted); ``top_k`` larger than the class
count and ``class_id`` out of range raise at once; threshold lists with NaN raise; negative
``label_weights`` raise when they would weight counts (``multi_label=False``); ``from_logits`` computes the
sigmoid in float64 and rounds it to float32 (torch's float32 sigmoid can differ by one ulp).
"""
from __future__ import annotations

import math

import numpy as np

from gpumetrics._state import FLOAT, INT
from gpumetrics.functional import threshold as F
from gpumetrics.metrics.base import Metric

__all__ = [
    "AUC", "FalseNegatives", "FalsePositives", "Precision", "PrecisionAtRecall", "Recall", "RecallAtPrecision",
    "SensitivityAtSpecificity", "SpecificityAtSensitivity", "TrueNegatives", "TruePositives",
]


def _to_list(x) -> list:
    if isinstance(x, (list, tuple)):
        return list(x)
    if isinstance(x, np.ndarray):
        return x.reshape(-1).tolist()
    return [x]


def _parse_thresholds(thresholds, default: float) -> list:
    """Keras' parse_init_thresholds, plus: NaN thresholds raise."""
    if thresholds is not None:
        values = _to_list(thresholds)
        bad = [t for t in values if t is None or not (0 <= t <= 1)]
        if bad:
            raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad}")
        return [float(t) for t in values]
    return [float(default)]


class _ThresholdMetric(Metric):
    """Shared machinery: the histogram state, the device copy of the plan, one update path."""

    _invalid_reasons = F.INVALID_REASONS
    _top_k = None
    _class_id = None
    _multi_label = False
    _from_logits = False
    _label_weights = None  # weights counts (AUC with multi_label=False)

    def _set_plan(self, plan: F.Plan, n_hist: int | None = 1) -> None:
        self._plan = plan
        self._dplan = None
        self._n_hist = n_hist
        if n_hist is not None:
            self._declare_state(n_hist)

    def _declare_state(self, n_hist: int) -> None:
        shape = (n_hist, self._plan.n + 1)
        self._specs = []
        self.add_state("pos_count", shape, INT)
        self.add_state("neg_count", shape, INT)
        self.add_state("pos_weight", shape, FLOAT)
        self.add_state("neg_weight", shape, FLOAT)
        self._n_hist = n_hist

    def _device_plan(self, device):
        if self._dplan is None or self._dplan.device != device:
            lw = self._label_weights if self._label_weights is not None and not self._multi_label else None
            self._dplan = F.DevicePlan(self._plan, device, lw)
        return self._dplan

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulate one batch (any rank; flattened unless ``multi_label``). Empty batches are a no-op."""
        device = self._device_for(y_true=y_true, y_pred=y_pred, sample_weight=sample_weight)
        use_lw = self._label_weights is not None and not self._multi_label
        batch = F._validate_inputs(y_true, y_pred, sample_weight, device, top_k=self._top_k,
                                   class_id=self._class_id, multi_label=self._multi_label,
                                   num_labels=self._n_hist if self._multi_label else None,
                                   label_weights_len=len(self._label_weights) if use_lw else None)
        if self._n_hist is None:  # multi-label AUC without num_labels: built by the first batch
            if self._specs:  # ... or by a loaded / merged state
                self._n_hist = int(self._specs[0].shape[0])
                batch = F._validate_inputs(y_true, y_pred, sample_weight, device, multi_label=True,
                                           num_labels=self._n_hist)
            else:
                self._declare_state(int(batch.scores.data.shape[1]))
        if batch.scores.data.size == 0:
            return
        dplan = self._device_plan(device)
        with self._batch(device, inputs=(y_true, y_pred)) as (scratch, invalid, xp):
            F._update(device, batch, self._plan, dplan, scratch, invalid, top_k=self._top_k,
                      class_id=self._class_id, per_column=self._multi_label, from_logits=self._from_logits,
                      use_label_weights=use_lw)

    def _counts(self, state, xp):
        return F.confusion_counts(state, self._plan, xp, self._compute_dtype)

    def __getstate__(self):
        saved = super().__getstate__()
        saved["attrs"] = {**saved["attrs"], "_dplan": None}  # device copies of the plan are rebuilt on demand
        return saved

    def _compute(self, state, xp):
        if not state:  # multi-label AUC that has not seen a batch yet
            return np.asarray(0.0, self._compute_dtype)
        return xp.asarray(self._value(state, xp))

    @property
    def thresholds(self) -> list:
        return list(self._plan.thresholds)

    def _scalar_or_vector(self, v):
        return v[0] if self._plan.n == 1 else v


# --------------------------------------------------------------------------------------- TP, FP, TN, FN


class _ConfusionCount(_ThresholdMetric):
    _which = 0

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        values = _parse_thresholds(thresholds, 0.5)
        self._set_plan(F.make_plan(values, F.is_evenly_distributed(values)))

    def _value(self, state, xp):
        return self._scalar_or_vector(self._counts(state, xp)[self._which][0])

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionCount):
    """Weighted number of true positives at each threshold (Keras ``keras.metrics.TruePositives``).

    An entry is predicted positive at threshold ``t`` when ``fl32(y_pred) > fl32(t)`` (strict, no clipping),
    or, for an evenly spaced list of at least 3 thresholds, by Keras' float32 bucket formula (predictions
    clipped to [0, 1]). Any non-zero label is positive. Inputs of any rank are flattened.

    Parameters
    ----------
    thresholds : float or list of float in [0, 1], default 0.5
        Kept in the given order; ``result()`` is a scalar for one threshold, else a vector.
    name, dtype : see :class:`gpumetrics.Metric`.
    """

    _which = 0


class FalsePositives(_ConfusionCount):
    """Weighted number of false positives at each threshold; see :class:`TruePositives`."""

    _which = 1


class TrueNegatives(_ConfusionCount):
    """Weighted number of true negatives at each threshold; see :class:`TruePositives`."""

    _which = 2


class FalseNegatives(_ConfusionCount):
    """Weighted number of false negatives at each threshold; see :class:`TruePositives`."""

    _which = 3


# --------------------------------------------------------------------------------------- Precision, Recall


class _PrecisionRecall(_ThresholdMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"top_k must be a positive integer (got {top_k!r})")
        if class_id is not None and (not isinstance(class_id, (int, np.integer)) or class_id < 0):
            raise ValueError(f"class_id must be a non-negative integer (got {class_id!r})")
        self._top_k = None if top_k is None else int(top_k)
        self._class_id = None if class_id is None else int(class_id)
        values = _parse_thresholds(thresholds, 0.5 if top_k is None else F.NEG_INF)
        self._set_plan(F.make_plan(values, F.is_evenly_distributed(values)))

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """Precision ``TP / (TP + FP)`` at each threshold (Keras ``keras.metrics.Precision``; 0 when nothing is
    predicted positive).

    Update order as in Keras: keep the ``top_k`` largest predictions of each row (last axis; exactly k, ties
    keep the lowest index, as TF and JAX do; for 1-D inputs across the batch), slice column ``class_id``,
    then threshold with strict ``>`` (the default threshold is 0.5, or -1e10 with ``top_k``).
    Precision@k is micro-averaged over all (row, top-k slot) pairs.
    """

    def _value(self, state, xp):
        tp, fp, _, _ = self._counts(state, xp)
        return self._scalar_or_vector(F.divide_no_nan(tp, tp + fp, xp)[0])


class Recall(_PrecisionRecall):
    """Recall ``TP / (TP + FN)`` at each threshold (Keras ``keras.metrics.Recall``; 0 without positives).

    Same update rules as :class:`Precision` (top_k, class_id, strict thresholds).
    """

    def _value(self, state, xp):
        tp, _, _, fn = self._counts(state, xp)
        return self._scalar_or_vector(F.divide_no_nan(tp, tp + fn, xp)[0])


# --------------------------------------------------------------------------------------- AUC

_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = {"interpolation": "interpolation", "majoring": "majoring", "minoring": "minoring"}


def _enum_value(x):
    return getattr(x, "value", x)


class AUC(_ThresholdMetric):
    """Approximate area under the ROC or PR curve (Keras ``keras.metrics.AUC``), binned at T thresholds.

    Thresholds: by default ``[-1e-7, 1/(T-1), ..., (T-2)/(T-1), 1 + 1e-7]`` with T = ``num_thresholds``,
    evaluated by Keras' bucket formula ``b = max(ceil(fl32(clip(p, 0, 1) * fl32(T - 1))) - 1, 0)`` (O(1) per
    score); a user list is sorted and framed by the same two end points, and uses the formula if
    ``[0] + list + [1]`` is evenly spaced, else strict ``fl32(p) > fl32(t)`` without clipping (O(log T) per
    score by a guide table and a binary search). ``result()`` applies Keras' formulas: trapezoids
    (``interpolation``), ``minoring`` / ``majoring`` rectangles, the Davis-Goadrich interpolation for PR,
    and the PR-gain transform for ``PRGAIN``. Degenerate inputs give Keras' values (0.0 with no data or one
    class for ROC; 1.0 for PR with only positives).

    Beyond Keras: :meth:`curve` returns the curve's points; ``gpumetrics.functional.roc_auc(...,
    exact=True)`` gives scikit-learn's exact value.
    """

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        curve_key = str(_enum_value(curve)).lower()
        if curve_key not in _CURVES:
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        sum_key = str(_enum_value(summation_method)).lower()
        if sum_key not in _SUMMATIONS:
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". Expected values are '
                             '["interpolation", "majoring", "minoring"]')
        self.curve = _CURVES[curve_key]
        self.summation_method = _SUMMATIONS[sum_key]
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(float(t) for t in _to_list(thresholds))
            if any(math.isnan(t) for t in inner):
                raise ValueError("thresholds must not be NaN")
            self.num_thresholds = len(inner) + 2
            even = F.is_evenly_distributed([0.0] + inner + [1.0])
        else:
            if num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            even = True
        values = [0.0 - F.EPSILON] + inner + [1.0 + F.EPSILON]
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        if num_labels and not multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        if label_weights is not None:
            lw = np.asarray(label_weights, dtype=np.float32).reshape(-1)
            if np.isnan(lw).any():
                raise ValueError("label_weights must not be NaN")
            if not multi_label and (lw < 0).any():
                raise ValueError("label_weights must be non-negative when multi_label=False (they weight counts)")
            self.label_weights = lw
        else:
            self.label_weights = None
        self._label_weights = self.label_weights
        self._multi_label = self.multi_label
        self._from_logits = bool(from_logits)
        n_hist = (int(num_labels) if num_labels else None) if multi_label else 1
        self._set_plan(F.make_plan(values, even, epsilon=True), n_hist)

    def _value(self, state, xp):
        tp, fp, tn, fn = self._counts(state, xp)
        return F.auc_from_counts(tp, fp, tn, fn, xp, self.curve, self.summation_method, self.multi_label,
                                 self.label_weights)

    def curve_points(self):
        """Points of the ROC (FPR, TPR) or PR (recall, precision) curve at the thresholds (beyond Keras).

        Returns ``(x, y, thresholds)``: x and y of shape (T,), or (num_labels, T) with multi_label, in the
        compute dtype on the state's device, in increasing threshold order (``thresholds`` a numpy array).
        ``curve="PRGAIN"`` returns the PR points.
        """
        state, xp = self._state()
        if not state:
            zero = np.zeros(self._plan.n, self._compute_dtype)
            return zero, zero.copy(), np.asarray(self.thresholds)
        tp, fp, tn, fn = self._counts(state, xp)
        x, y = F.curve_from_counts(tp, fp, tn, fn, xp, "ROC" if self.curve == "ROC" else "PR")
        if not self.multi_label:
            x, y = x[0], y[0]
        return x, y, np.asarray(self.thresholds)

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self.thresholds[1:-1]
        return config


# --------------------------------------------------------------------------------------- X at Y


class _SensitivitySpecificityBase(_ThresholdMetric):
    _value_name = "value"

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self._direction = "up"
        if num_thresholds <= 0:
            raise ValueError("Argument `num_thresholds` must be an integer > 0. "
                             f"Received: num_thresholds={num_thresholds}")
        if value is None or not (0 <= value <= 1):
            raise ValueError(f"Argument `{self._value_name}` must be in the range [0, 1]. "
                             f"Received: {self._value_name}={value}")
        if class_id is not None and (not isinstance(class_id, (int, np.integer)) or class_id < 0):
            raise ValueError(f"class_id must be a non-negative integer (got {class_id!r})")
        self.value = value
        self.class_id = class_id
        self._class_id = None if class_id is None else int(class_id)
        self.num_thresholds = int(num_thresholds)
        if num_thresholds == 1:
            values, even = [0.5], False
        else:
            values = [0.0] + [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1.0]
            even = True
        self._set_plan(F.make_plan(values, even, epsilon=False))

    def _rates(self, state, xp):
        tp, fp, tn, fn = self._counts(state, xp)
        sens = F.divide_no_nan(tp, tp + fn, xp)[0]
        spec = F.divide_no_nan(tn, tn + fp, xp)[0]
        prec = F.divide_no_nan(tp, tp + fp, xp)[0]
        return sens, spec, prec

    def _value(self, state, xp):
        sens, spec, prec = self._rates(state, xp)
        constrained, dependent = self._pick(sens, spec, prec)
        return F.max_under_constraint(constrained, dependent, self.value, xp)

    def get_config(self):
        return {**super().get_config(), self._value_name: self.value, "num_thresholds": self.num_thresholds,
                "class_id": self.class_id}


class SensitivityAtSpecificity(_SensitivitySpecificityBase):
    """Best sensitivity (recall) among thresholds whose specificity is >= ``specificity`` (Keras).

    Thresholds ``[0, 1/(T-1), ..., 1]`` (no epsilon: a score of exactly 0 is never positive), Keras' bucket
    formula; ``num_thresholds=1`` means the single threshold 0.5 with strict ``>``. 0 when none qualifies.
    """

    _value_name = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)
        self.specificity = specificity

    def _pick(self, sens, spec, prec):
        return spec, sens


class SpecificityAtSensitivity(_SensitivitySpecificityBase):
    """Best specificity among thresholds whose sensitivity is >= ``sensitivity``; see
    :class:`SensitivityAtSpecificity`."""

    _value_name = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)
        self.sensitivity = sensitivity

    def _pick(self, sens, spec, prec):
        return sens, spec


class PrecisionAtRecall(_SensitivitySpecificityBase):
    """Best precision among thresholds whose recall is >= ``recall``; see :class:`SensitivityAtSpecificity`."""

    _value_name = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)
        self.recall = recall

    def _pick(self, sens, spec, prec):
        return sens, prec


class RecallAtPrecision(_SensitivitySpecificityBase):
    """Best recall among thresholds whose precision is >= ``precision``; see :class:`SensitivityAtSpecificity`.
    """

    _value_name = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)
        self.precision = precision

    def _pick(self, sens, spec, prec):
        return prec, sens
