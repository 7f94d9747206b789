"""FBetaScore and F1Score (Keras spec 2.8), from per-class sums accumulated in one pass per batch.

See gpumetrics/functional/f_score.py for the exact rules (binarisation, the sums, the formula). Deviations
from Keras 3.15: the sums are kept in float64 (Keras: float32; exact for 0/1 labels up to 2**53 rows);
"micro" keeps per-class sums and adds them in ``result()``; NaN scores, non-finite labels and non-finite
weights reject the batch (reported, state unchanged); a zero weight skips its row; ``result()`` before any
update returns 0.0 (or an empty vector with ``average=None``) where Keras raises.
"""
from __future__ import annotations

import numpy as np

from gpumetrics._state import FLOAT
from gpumetrics.functional import f_score as F
from gpumetrics.metrics.base import Metric

_STATE = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")


class FBetaScore(Metric):
    """F-beta score, Keras' formula: ``(1 + beta**2) * p * r / (beta**2 * p + r)`` with its epsilons.

    Parameters
    ----------
    average : {None, "micro", "macro", "weighted"}
    beta : float
        A Python float > 0 (an int raises, as in Keras).
    threshold : float, optional
        ``y_pred > threshold`` (strict) is positive; ``None``: every entry tied for its row's maximum is
        positive (if its magnitude exceeds 1e-9), so an all-zero row predicts nothing.

    Inputs are (N, C); ``y_true`` is used as given (soft labels multiply). ``sample_weight``: scalar or (N,).

    Examples
    --------
    >>> m = FBetaScore(beta=2.0, threshold=0.5)
    >>> m.update_state(np.array([[1, 1, 0], [0, 1, 0]]), np.array([[0.9, 0.4, 0.2], [0.2, 0.8, 0.6]]))
    >>> m.result().round(4).tolist()
    [0.9999, 0.5556, 0.0]
    """

    _direction = "up"
    _invalid_reasons = F.INVALID_REASONS

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        F._validate_args(average, beta, threshold)
        self.average = average
        self.beta = beta
        self.threshold = threshold

    @property
    def num_classes(self) -> int | None:
        """C, fixed by the first update (None before)."""
        return self._specs[0].shape[0] if self._specs else None

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Add an (N, C) batch. The first update fixes C; later batches must have the same C."""
        device = self._device_for(y_true=y_true, y_pred=y_pred, sample_weight=sample_weight)
        xp = F._xp(device)
        batch = F._prepare(y_true, y_pred, sample_weight, device, xp)
        C = batch.shape[1]
        if self.num_classes is None:
            for name in _STATE:
                self.add_state(name, (C,), FLOAT)
        elif C != self.num_classes:
            raise ValueError(f"{self.name}: y_pred has {C} classes but earlier batches had {self.num_classes}")
        if batch.shape[0] == 0:
            return
        with self._batch(device, inputs=(y_true, y_pred)) as (state, invalid, xp):
            F._update(device, batch, self.threshold, self._compute_dtype is np.float64, state, invalid, xp)

    def _compute(self, state, xp):
        dtype = self._compute_dtype
        if not state:
            return np.asarray(0.0 if self.average is not None else np.zeros(0), dtype=dtype)
        return F._compute(state, self.average, self.beta, dtype, xp)

    def get_config(self) -> dict:
        return {**super().get_config(), "average": self.average, "beta": self.beta, "threshold": self.threshold}


class F1Score(FBetaScore):
    """F1 score: :class:`FBetaScore` with ``beta=1.0`` (its config leaves out ``beta``, as Keras').

    Examples
    --------
    >>> m = F1Score(threshold=0.5)
    >>> m.update_state(np.array([[1, 1, 0], [0, 1, 0]]), np.array([[0.9, 0.4, 0.2], [0.2, 0.8, 0.6]]))
    >>> m.result().round(4).tolist()
    [1.0, 0.6667, 0.0]
    """

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("beta")
        return config
