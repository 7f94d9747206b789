"""The Mean engine (Keras spec 1.3): how per-sample values and sample weights become ``total`` and ``count``.

Keras reduces values to per-sample means, weights them, and adds ``sum(w * v)`` to ``total`` and ``sum(w)``
to ``count`` (a scalar weight makes the whole batch one sample). Unrolled, every case is the same sum over
the input elements with the weight broadcast to them:

    total += sum(w * f) / (D * K)        count += sum(w) / (D * K)

where ``f`` is the elementwise value (an error, a match, the value itself), ``K`` the length of an axis the
metric's function averages first (MAE/MSE average the last axis; 1 otherwise) and ``D`` the number of
values each weight is spread over: the product of the non-batch value axes, or every value when the weight
is a scalar. ``Sum`` uses ``D = K = 1``. So one kernel pass (``elementwise_sum``) serves the whole family,
with no per-sample array materialised, and the state equals Keras' own.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gpumetrics._dispatch import Array, op
from gpumetrics.functional._common import divide_no_nan
from gpumetrics.functional._layout import align_ranks, grid

# One reason per invalid counter of elementwise_sum: [a, b, weight]; Mean has no b.
VALUES_REASONS = ("values that are NaN or infinite", "(unused)",
                  "elements whose sample_weight is NaN or infinite")


class Weighting(NamedTuple):
    """How one batch is weighted: the grid shape, the weight broadcast to it (or None), and 1 / (D * K)."""

    grid_shape: tuple
    weight: Array | None
    scale: float


def plan_weighting(values_shape: tuple, weight: Array | None, reduced_len: int | None, reduction: str,
                   xp) -> Weighting:
    """Keras' weight alignment for per-sample values of ``values_shape``, each the mean of ``reduced_len``
    input elements along a trailing axis (``None`` when the values are the input elements themselves).

    Raises ``ValueError`` when the weight cannot broadcast to the values, as Keras does.
    """
    trailing = () if reduced_len is None else (reduced_len,)
    reduced_len = 1 if reduced_len is None else reduced_len
    if weight is None:
        shape = tuple(values_shape)
        per_weight = int(np.prod(shape[1:], dtype=np.int64)) if shape else 1
        return Weighting(shape + trailing, None, _scale(per_weight, reduced_len, reduction))
    shape, w_shape = align_ranks(tuple(values_shape), weight.shape)
    rank = len(w_shape)
    if rank > len(shape) or _broadcast(w_shape, shape[:rank]) != shape[:rank]:
        raise ValueError(f"sample_weight of shape {weight.shape} cannot be broadcast to the per-sample values "
                         f"of shape {tuple(values_shape)}")
    per_weight = int(np.prod(shape[1:] if rank else shape, dtype=np.int64))
    grid_shape = shape + trailing
    w = xp.broadcast_to(weight.data.reshape(w_shape + (1,) * (len(grid_shape) - rank)), grid_shape)
    return Weighting(grid_shape, Array(w, weight.kind, weight.device), _scale(per_weight, reduced_len, reduction))


def _broadcast(a: tuple, b: tuple):
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        return None


def _scale(per_weight: int, reduced_len: int, reduction: str) -> float:
    if reduction == "sum":
        return 1.0
    return 1.0 / (max(per_weight, 1) * max(reduced_len, 1))


def reshape(x: Array, shape: tuple, xp) -> Array:
    """``x`` viewed with ``shape`` (same elements; only size-1 axes differ, or a broadcast)."""
    if x.shape == tuple(shape):
        return x
    if int(np.prod(x.shape, dtype=np.int64)) == int(np.prod(shape, dtype=np.int64)):
        return Array(x.data.reshape(shape), x.kind, x.device)
    return Array(xp.broadcast_to(x.data, shape), x.kind, x.device)


def _update(state: dict, invalid, xp, a: Array, b: Array | None, weighting: Weighting, func: int,
            threshold: float = 0.0) -> None:
    """Accumulate one batch: ``state["total"]`` (and ``state["count"]`` when declared) via elementwise_sum."""
    shape = weighting.grid_shape
    a = reshape(a, shape, xp)
    b = reshape(b, shape, xp) if b is not None else None
    rows, cols, (ga, gb, gw) = grid(shape, [a, b, weighting.weight], xp)
    count = state.get("count")
    if count is None:
        count = xp.zeros((), dtype=np.float64)  # Sum keeps no count
    op(a.device, "elementwise_sum")(ga, gb, gw, rows, cols, func, threshold, weighting.scale,
                                    state["total"], count, invalid)


def _compute_mean(state: dict, dtype, xp):
    """Keras' ``divide_no_nan(total, count)`` in the compute dtype."""
    total = xp.asarray(state["total"], dtype=dtype)
    count = xp.asarray(state["count"], dtype=dtype)
    return divide_no_nan(total, count, xp)


def _compute_sum(state: dict, dtype, xp):
    return xp.asarray(state["total"], dtype=dtype)
