"""Regression errors and elementwise accuracies: validation stages and one-shot functions.

Keras' loss-style metrics align ``y_true`` with ``y_pred`` ("squeeze or expand the last axis", spec 1.2),
compute a per-element value, and (MAE, MSE) average the last axis before the Mean engine weights the samples.
Unlike Keras, ``y_true`` is never cast to ``y_pred``'s dtype: both are read as given and compared in double
precision (an integer ``y_pred`` does not truncate float labels).
"""
from __future__ import annotations

import numpy as np

from gpumetrics._dispatch import Array
from gpumetrics.functional._layout import align_ranks
from gpumetrics.functional.mean import Weighting, plan_weighting

FUNC_VALUE, FUNC_ABS_ERROR, FUNC_SQUARED_ERROR, FUNC_EQUAL, FUNC_BINARY_MATCH = range(5)

PAIR_REASONS = ("y_true values that are NaN or infinite", "y_pred values that are NaN or infinite",
                "elements whose sample_weight is NaN or infinite")


def _validate_pair(y_true: Array, y_pred: Array) -> tuple:
    """Shape both inputs share after Keras' rank alignment; ``ValueError`` if they cannot broadcast."""
    true_shape, pred_shape = align_ranks(y_true.shape, y_pred.shape)
    try:
        return tuple(np.broadcast_shapes(true_shape, pred_shape))
    except ValueError:
        raise ValueError(f"y_true of shape {y_true.shape} and y_pred of shape {y_pred.shape} do not match "
                         f"(they must have the same shape, up to a trailing axis of length 1)") from None


def _plan_pair(y_true: Array, y_pred: Array, weight: Array | None, reduces_last_axis: bool, xp
               ) -> Weighting | None:
    """Grid and weighting for one batch of a pair metric; ``None`` for an empty batch (a no-op)."""
    shape = _validate_pair(y_true, y_pred)
    if int(np.prod(shape, dtype=np.int64)) == 0:
        return None
    if reduces_last_axis and shape:
        return plan_weighting(shape[:-1], weight, shape[-1], "mean", xp)
    return plan_weighting(shape, weight, None, "mean", xp)


def _threshold_in_dtype_of(threshold: float, kind: str) -> float:
    """Keras casts the threshold to y_pred's dtype before comparing; do the same rounding here."""
    if kind == "f4":
        return float(np.float32(threshold))
    if kind == "f2":
        return float(np.float16(threshold))
    if kind == "bf2":  # round to nearest even on the top 16 bits of the float32
        bits = int(np.float32(threshold).view(np.uint32))
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
        return float(np.uint32(bits).view(np.float32))
    return float(threshold)
