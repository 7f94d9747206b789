"""MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError (Keras spec 2.2)."""
from __future__ import annotations

from gpumetrics.functional import regression as F
from gpumetrics.functional.mean import _compute_mean
from gpumetrics.metrics.mean import Mean


class _PairMean(Mean):
    """A Mean over an elementwise function of (y_true, y_pred): the shared update of this family."""

    _invalid_reasons = F.PAIR_REASONS
    _func: int
    _reduces_last_axis: bool = False  # MAE/MSE average the last axis per sample first (Keras' loss functions)

    def _threshold(self, y_pred) -> float:
        return 0.0

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        device, xp, t, p, w = self._pair_inputs(y_true, y_pred, sample_weight)
        weighting = F._plan_pair(t, p, w, self._reduces_last_axis, xp)
        if weighting is None:
            return  # an empty batch is a no-op
        self._accumulate(device, (y_true, y_pred, sample_weight), t, p, weighting, self._func,
                         self._threshold(p))


class MeanAbsoluteError(_PairMean):
    """Mean of ``mean(|y_true - y_pred|, axis=-1)`` over samples (Keras' MAE).

    1-D inputs are one sample per batch (Keras), so the result is the mean of the batch means; (N, D) inputs
    take weights of shape (N,), (N, 1) or a scalar.
    """

    _direction = "down"
    _func = F.FUNC_ABS_ERROR
    _reduces_last_axis = True

    def __init__(self, name: str = "mean_absolute_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class MeanSquaredError(_PairMean):
    """Mean of ``mean((y_true - y_pred)**2, axis=-1)`` over samples (Keras' MSE)."""

    _direction = "down"
    _func = F.FUNC_SQUARED_ERROR
    _reduces_last_axis = True

    def __init__(self, name: str = "mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class RootMeanSquaredError(_PairMean):
    """``sqrt(mean((y_pred - y_true)**2))`` with the error averaged per element, not per row (Keras)."""

    _direction = "down"
    _func = F.FUNC_SQUARED_ERROR

    def __init__(self, name: str = "root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _compute(self, state, xp):
        return xp.sqrt(_compute_mean(state, self._compute_dtype, xp))
