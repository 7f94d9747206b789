"""F-beta and F1 as stages: validate -> one pass of per-class sums (kernels/class_sums.cu) -> Keras' formula.

Keras' FBetaScore is not a confusion-matrix metric: ``y_true`` is used as given (soft labels multiply, a
label of 2 counts twice), and without a threshold *every* entry tied for the row maximum is predicted
positive (an all-zero row predicts nothing). So it gets its own op, which adds per class

    TP += w*pred*y    FP += w*pred*(1-y)    FN += w*(1-pred)*y    support += w*y

with ``pred = y_pred > threshold`` (strict) or ``pred = (y_pred >= rowmax) and |y_pred| > 1e-9``, values cast to
float32 first as Keras does (float64 with ``dtype="float64"``). The result, in the compute dtype, with
``EPS = 1e-7`` everywhere and no divide-no-nan (absent classes score 0 and still count in the macro mean):

    p = TP / (TP + FP + EPS);  r = TP / (TP + FN + EPS);  f = (p*r) / (beta**2 * p + r + EPS) * (1 + beta**2)

``average``: None -> f per class; "micro" -> f of the sums over classes; "macro" -> mean(f);
"weighted" -> sum(f * support / (sum(support) + EPS)).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gpumetrics import _dispatch
from gpumetrics._dispatch import Array, as_array
from gpumetrics.functional._common import EPSILON
from gpumetrics.functional._layout import element_strides, flat_base

INVALID_REASONS = (
    "y_true values are NaN or infinite",
    "y_pred values are NaN",
    "sample_weight values are NaN or infinite",
)
AVERAGES = (None, "micro", "macro", "weighted")
_OP_KINDS = ("u1", "i1", "i2", "i4", "i8", "f2", "bf2", "f4", "f8")


class Batch(NamedTuple):
    y_true: object
    true_kind: str
    true_strides: tuple
    y_pred: object
    pred_kind: str
    pred_strides: tuple
    weights: object  # None or a contiguous float64 array of 1 or N elements

    @property
    def shape(self) -> tuple:
        return tuple(self.y_pred.shape)


def _validate_args(average, beta, threshold) -> None:
    """Keras' constructor checks: ``beta`` a Python float > 0, ``threshold`` None or a float in (0, 1]."""
    if average not in AVERAGES:
        raise ValueError("Invalid `average` argument value. Expected one of: {None, 'micro', 'macro', "
                         f"'weighted'}}. Received: average={average}")
    if not isinstance(beta, float):
        raise ValueError(f"Invalid `beta` argument value. It should be a Python float. Received: beta={beta} "
                         f"of type '{type(beta)}'")
    if beta <= 0.0:
        raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}")
    if threshold is not None:
        if not isinstance(threshold, float):
            raise ValueError("Invalid `threshold` argument value. It should be a Python float. "
                             f"Received: threshold={threshold} of type '{type(threshold)}'")
        if threshold > 1.0 or threshold <= 0.0:
            raise ValueError("Invalid `threshold` argument value. It should verify 0 < threshold <= 1. "
                             f"Received: threshold={threshold}")


def _operand(arr: Array, xp) -> tuple[object, str, tuple]:
    data, kind = arr.data, arr.kind
    if kind == "b1":
        data, kind = data.view(np.uint8), "u1"
    elif kind not in _OP_KINDS:  # unsigned 16/32/64-bit: values must stay exact, so widen to float64
        data, kind = data.astype(np.float64), "f8"
    if min(element_strides(data), default=0) < 0:
        data = xp.ascontiguousarray(data)
    return data, kind, tuple(int(s) for s in element_strides(data))


def _prepare(y_true, y_pred, sample_weight, device, xp) -> Batch:
    """Check a batch (2-D (N, C) inputs of one shape, weights a scalar or (N,)); raises before any state change."""
    t = as_array(y_true, device, "y_true")
    p = as_array(y_pred, device, "y_pred")
    if t.ndim != 2 or p.ndim != 2:
        raise ValueError("FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received input "
                         f"shapes: y_pred.shape={p.shape} and y_true.shape={t.shape}.")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same shape (got {t.shape} and {p.shape})")
    weights = None
    if sample_weight is not None:
        w = as_array(sample_weight, device, "sample_weight")
        if not (w.size == 1 and w.ndim <= 1) and w.shape != (p.shape[0],):
            raise ValueError(f"sample_weight must be a scalar or of shape ({p.shape[0]},) (got {w.shape})")
        data = w.data
        if w.kind == "f2":
            data = data.view(np.float16)
        elif w.kind == "bf2":
            data = (data.astype(np.uint32) << 16).view(np.float32)
        weights = xp.ascontiguousarray(data.reshape(-1).astype(np.float64))
    td, tk, ts = _operand(t, xp)
    pd, pk, ps = _operand(p, xp)
    return Batch(td, tk, ts, pd, pk, ps, weights)


def _xp(device):
    if device.kind == "cpu":
        return np
    from gpumetrics._cuda._runtime import get_runtime  # noqa: PLC0415

    return get_runtime().xp


def _update(device, batch: Batch, threshold, as_double: bool, state: dict, invalid, xp) -> None:
    """One pass of the batch into the per-class sums ``state`` (tp, fp, fn, support: float64 (C,))."""
    if batch.shape[0] == 0 or batch.shape[1] == 0:
        return
    t, p = batch.y_true, batch.y_pred
    if device.kind != "cpu":
        t, p = flat_base(t, xp), flat_base(p, xp)  # contiguous bases from the first element + element strides
    op = _dispatch.op(device, "class_sums")
    op(t, batch.true_kind, batch.true_strides, p, batch.pred_kind, batch.pred_strides, batch.shape, batch.weights,
       threshold,
       as_double, state["true_positives"], state["false_positives"], state["false_negatives"],
       state["intermediate_weights"], invalid)


def _compute(state: dict, average, beta: float, dtype, xp):
    """Keras' F-beta result from the per-class sums, in ``dtype`` (module docstring)."""
    tp, fp, fn, sup = (state[k] for k in ("true_positives", "false_positives", "false_negatives",
                                            "intermediate_weights"))
    if average == "micro":
        tp, fp, fn, sup = (x.sum(keepdims=True) for x in (tp, fp, fn, sup))
    tp, fp, fn, sup = (x.astype(dtype) for x in (tp, fp, fn, sup))
    eps, b2, one = dtype(EPSILON), dtype(beta * beta), dtype(1.0 + beta * beta)
    precision = tp / (tp + fp + eps)
    recall = tp / (tp + fn + eps)
    f = (precision * recall) / (b2 * precision + recall + eps) * one
    if average == "weighted":
        return xp.asarray((f * (sup / (sup.sum() + eps))).sum(), dtype=dtype)
    if average is not None:
        return xp.asarray(f.mean(), dtype=dtype)
    return f


def fbeta_score(y_true, y_pred, beta=1.0, average=None, threshold=None, sample_weight=None, dtype=np.float32):
    """Keras' FBetaScore of one (N, C) batch (module docstring), on the input's device."""
    _validate_args(average, beta, threshold)
    device = _dispatch.common_device(y_true=y_true, y_pred=y_pred, sample_weight=sample_weight)
    xp = _xp(device)
    batch = _prepare(y_true, y_pred, sample_weight, device, xp)
    C = batch.shape[1]
    state = {k: xp.zeros(C, np.float64) for k in ("true_positives", "false_positives", "false_negatives",
                                                  "intermediate_weights")}
    invalid = xp.zeros(len(INVALID_REASONS), np.uint64)
    dtype = np.dtype(dtype).type
    _update(device, batch, threshold, dtype is np.float64, state, invalid, xp)
    bad = invalid if device.kind == "cpu" else _dispatch._runtime().to_host(invalid)
    if bad.any():
        from gpumetrics._state import InvalidInputError  # noqa: PLC0415

        raise InvalidInputError("invalid input: " + "; ".join(
            f"{int(c)} {r}" for c, r in zip(bad, INVALID_REASONS) if c))
    return _compute(state, average, beta, dtype, xp)


def f1_score(y_true, y_pred, average=None, threshold=None, sample_weight=None, dtype=np.float32):
    """Keras' F1Score of one (N, C) batch: :func:`fbeta_score` with beta = 1."""
    return fbeta_score(y_true, y_pred, 1.0, average, threshold, sample_weight, dtype)
