"""The accuracy family's class-based members: argmax, Keras' in_top_k and sorted-id matches per row.

Per row of ``y_pred`` (classes along the last axis) the op ``class_match`` finds the target class (a sparse
id or the first argmax of a one-hot ``y_true`` row) and whether it matches; the Mean engine then weights the
per-row matches. Class ids must be integers or integral floats in [0, C): anything else is invalid (Keras
would silently count a miss).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gpumetrics._dispatch import Array, op
from gpumetrics.functional._layout import grid
from gpumetrics.functional.mean import Weighting, plan_weighting, reshape

MODE_ARGMAX, MODE_TOP_K, MODE_SORTED_IDS = range(3)

MATCH_REASONS = ("rows of y_pred with NaN or infinite scores",
                 "y_true class ids that are fractional or outside [0, num_classes) (or non-finite one-hot rows)",
                 "rows whose sample_weight is NaN or infinite")

_NO_CLASS_LIMIT = 2**62  # sorted-id mode: ids are compared, not range-checked against a class count


class MatchBatch(NamedTuple):
    scores: Array
    target: Array
    target_one_hot: bool
    rows_shape: tuple
    weighting: Weighting


def _validate_one_hot(y_true: Array, y_pred: Array, weight: Array | None, xp) -> MatchBatch | None:
    """CategoricalAccuracy / TopKCategoricalAccuracy: y_true one-hot with y_pred's shape."""
    if y_pred.ndim < 1:
        raise ValueError("y_pred must have a class axis (rank >= 1)")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true (one-hot) must have y_pred's shape {y_pred.shape}, got {y_true.shape}")
    rows_shape = y_pred.shape[:-1]
    if y_pred.size == 0:
        return None
    return MatchBatch(y_pred, y_true, True, rows_shape, plan_weighting(rows_shape, weight, None, "mean", xp))


def _validate_sparse(y_true: Array, y_pred: Array, weight: Array | None, xp, flatten: bool) -> MatchBatch | None:
    """Sparse accuracies: one class id per row of y_pred; per-sample values keep y_true's own shape.

    ``flatten`` (SparseTopK) accepts any y_true with one id per row; otherwise y_true is y_pred's shape
    without the class axis, optionally with a trailing axis of 1 (Keras squeezes it).
    """
    if y_pred.ndim < 1:
        raise ValueError("y_pred must have a class axis (rank >= 1)")
    rows_shape = y_pred.shape[:-1]
    n_rows = int(np.prod(rows_shape, dtype=np.int64))
    expected = (y_true.shape == rows_shape or y_true.shape == rows_shape + (1,)
                or (flatten and y_true.size == n_rows))
    if not expected:
        raise ValueError(f"y_true of shape {y_true.shape} does not hold one class id per row of y_pred "
                         f"(shape {y_pred.shape}, rows {rows_shape})")
    if n_rows == 0 or y_pred.shape[-1] == 0:
        return None
    weighting = plan_weighting(y_true.shape, weight, None, "mean", xp)
    return MatchBatch(y_pred, reshape(y_true, rows_shape, xp), False, rows_shape, weighting)


def _check_k(k: int, n_classes: int) -> None:
    if k > n_classes:
        raise ValueError(f"k={k} is larger than the number of classes ({n_classes}) in y_pred")


def _update(state: dict, invalid, xp, batch: MatchBatch, mode: int, k: int) -> None:
    """Accumulate one batch of per-row matches into ``state["total"]`` and ``state["count"]``."""
    weight = batch.weighting.weight
    if weight is not None:
        weight = reshape(weight, batch.rows_shape, xp)
    rows, cols, (scores, target, w) = grid(batch.rows_shape, [batch.scores, batch.target, weight], xp,
                                           inner_axes=[1, 1 if batch.target_one_hot else 0, 0])
    # In sorted-id mode the row holds ids, not one score per class: ids are only checked to be integers.
    n_classes = _NO_CLASS_LIMIT if mode == MODE_SORTED_IDS else batch.scores.shape[-1]
    target_class_stride = target.inner[0] if batch.target_one_hot else 0
    op(batch.scores.device, "class_match")(scores, scores.inner[0], n_classes, target, target_class_stride,
                                           batch.target_one_hot, w, rows, cols, mode, k, batch.weighting.scale,
                                           state["total"], state["count"], invalid)
