"""Mean, Sum and MeanMetricWrapper: the Mean engine of Keras (spec 1.3, 2.1)."""
from __future__ import annotations

from gpumetrics._dispatch import as_array
from gpumetrics._state import FLOAT, array_module
from gpumetrics.functional import mean as F
from gpumetrics.functional.regression import FUNC_VALUE
from gpumetrics.metrics.base import Metric


class Mean(Metric):
    """Weighted mean of the values seen: ``total / count`` (0 before any update or when all weights are 0).

    Per-sample values are averaged over their non-batch axes, then weighted: ``total += sum(w * v)``,
    ``count += sum(w)``. A scalar ``sample_weight`` makes the whole batch one sample of that weight (Keras).
    State is exact (float64) whatever ``dtype``; ``result()`` is computed in ``dtype``.

    Examples
    --------
    >>> m = Mean()
    >>> m.update_state([1, 3, 5, 7])
    >>> float(m.result())
    4.0
    """

    _invalid_reasons = F.VALUES_REASONS

    def __init__(self, name: str = "mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.add_state("total", (), FLOAT)
        self.add_state("count", (), FLOAT)

    _reduction = "mean"

    def update_state(self, values, sample_weight=None) -> None:
        device = self._device_for(values=values, sample_weight=sample_weight)
        xp = array_module(device)
        v = as_array(values, device, "values")
        w = as_array(sample_weight, device, "sample_weight") if sample_weight is not None else None
        if v.size == 0:
            return
        weighting = F.plan_weighting(v.shape, w, None, self._reduction, xp)
        self._accumulate(device, (values, sample_weight), v, None, weighting, FUNC_VALUE)

    def _pair_inputs(self, y_true, y_pred, sample_weight):
        """(device, array module, y_true, y_pred, weight or None) of one batch of a (y_true, y_pred) metric."""
        device = self._device_for(y_true=y_true, y_pred=y_pred, sample_weight=sample_weight)
        w = as_array(sample_weight, device, "sample_weight") if sample_weight is not None else None
        return (device, array_module(device), as_array(y_true, device, "y_true"),
                as_array(y_pred, device, "y_pred"), w)

    def _accumulate(self, device, raw_inputs, a, b, weighting, func, threshold=0.0) -> None:
        with self._batch(device, raw_inputs) as (state, invalid, xp):
            F._update(state, invalid, xp, a, b, weighting, func, threshold)

    def _compute(self, state, xp):
        return F._compute_mean(state, self._compute_dtype, xp)


class Sum(Mean):
    """Weighted sum of the values seen (a scalar ``sample_weight`` scales the batch sum)."""

    _reduction = "sum"

    def __init__(self, name: str = "sum", dtype=None):
        Metric.__init__(self, name=name, dtype=dtype)
        self.add_state("total", (), FLOAT)

    def _compute(self, state, xp):
        return F._compute_sum(state, self._compute_dtype, xp)


class MeanMetricWrapper(Mean):
    """Mean of ``fn(y_true, y_pred, **kwargs)``: per-sample values from any function, weighted as :class:`Mean`.

    ``fn`` runs in the inputs' array module (numpy for CPU inputs, cupy for CUDA inputs; see
    :func:`gpumetrics.xp`), so it stays on the device. It must return one value per sample (or per element).
    """

    def __init__(self, fn, name: str | None = None, dtype=None, **kwargs):
        super().__init__(name=name if name is not None else getattr(fn, "__name__", "mean_metric_wrapper"),
                         dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        _, xp, t, p, _ = self._pair_inputs(y_true, y_pred, sample_weight)
        values = self._fn(_plain(t, xp), _plain(p, xp), **self._fn_kwargs)
        super().update_state(values, sample_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "fn": self._fn, **self._fn_kwargs}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        return cls(config.pop("fn"), **config)


def _plain(x, xp):
    """An input as an ordinary array of its module (16-bit floats widened: user functions expect that)."""
    if x.kind == "f2":
        return x.data.view(xp.float16)
    if x.kind == "bf2":
        return (x.data.astype(xp.uint32) << 16).view(xp.float32)
    return x.data
