"""Confusion matrices and IoU as stages: validate -> sides -> one fused pass into a C x C matrix -> values.

Rows are true classes, columns predicted classes: ``cm[t, q]`` counts (or sums the weights of) the pixels
whose true class is ``t`` and predicted class ``q``.

Each side of a batch is read in one of three modes, in one pass (kernels/confusion_matrix.cu and its Numba
mirror), without materialising any intermediate array:

- ``ids``: the values are class ids (any integer dtype, read as stored; floats must be integral);
- ``argmax``: the values are scores along ``axis``; the id is the *first* index of the maximum;
- ``threshold`` (BinaryIoU's y_pred): id = 1 if ``fl32(value) >= fl32(threshold)`` else 0.

Per pixel: ``y_true == ignore_class`` skips it (prediction and weight unread); a zero weight skips it;
a negative, NaN or infinite weight, a y_true or y_pred that is not an integer (or a NaN score), and an id
outside ``[0, C)`` are *invalid*: the batch is rejected and reported (Keras drops such ids silently).

IoU from a matrix (Keras 3.15 ``IoU.result``): ``tp_c = cm[c, c]``, ``den_c = rowsum_c + colsum_c - tp_c``,
both cast to float32; over the target ids ``valid = den > 1e-9``, ``iou = where(valid, tp / (den + 1e-7), 0)``
and the result is ``sum(iou) / (count(valid) + 1e-7)``, all in float32 (float64 with ``dtype="float64"``).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gpumetrics import _dispatch
from gpumetrics._dispatch import Array, as_array
from gpumetrics.functional._common import EPSILON
from gpumetrics.functional._layout import collapsed_stride, element_strides, flat_base

# One slot per reason, in the order of the op's invalid counters.
INVALID_REASONS = (
    "y_true values are not class ids (NaN, infinite or fractional)",
    "y_true class ids are outside [0, num_classes) (and not ignore_class)",
    "y_pred values are not class ids (NaN, infinite or fractional) or its scores are NaN",
    "y_pred class ids are outside [0, num_classes)",
    "sample_weight values are negative, NaN or infinite",
)
NORMALIZE = (None, "true", "pred", "all")



class Side(NamedTuple):
    """One input as the op reads it: data, element kind, mode, and the (outer, K, inner) view in elements."""

    data: object
    kind: str
    mode: str
    view: tuple  # (outer, K, inner, s_outer, s_class, s_inner)
    pixels: tuple  # shape of the pixel grid (the input's shape without its class axis)

    @property
    def n(self) -> int:
        return int(self.view[0]) * int(self.view[2])


class Batch(NamedTuple):
    y_true: Side
    y_pred: Side
    weights: object  # None or a float32/float64 array of 1 or n elements on the device


# ------------------------------------------------------------------------------------------ validation


def _validate_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer (got {num_classes!r})")
    return int(num_classes)


def _validate_class_id(value, name: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer or None (got {value!r})")
    return int(value)


def _validate_target_ids(target_class_ids, num_classes: int, ignore_class) -> list[int]:
    try:
        ids = list(target_class_ids)
    except TypeError:
        raise ValueError(f"target_class_ids must be a list or tuple of class ids (got {target_class_ids!r})") from None
    if not ids:
        raise ValueError("target_class_ids must not be empty")
    for t in ids:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise ValueError(f"target_class_ids must be integers (got {t!r})")
    if max(ids) >= num_classes:
        raise ValueError(f"Target class id {max(ids)} is out of range, which is [0, {num_classes}).")
    if min(ids) < 0:
        raise ValueError(f"Target class id {min(ids)} is out of range, which is [0, {num_classes}).")
    if ignore_class is not None and ignore_class in ids:
        raise ValueError(f"ignore_class {ignore_class} is one of target_class_ids {ids}: an ignored class "
                         f"has no pixels, so its IoU would never count")
    return [int(t) for t in ids]


def _validate_normalize(normalize):
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE} (got {normalize!r})")
    return normalize


# ------------------------------------------------------------------------------------------ sides


def _normalise_kind(arr: Array, xp) -> tuple[object, str]:
    """Data and kind the op reads: bool as uint8 and uint64 as int64 (views); uint16/uint32 widened (copy)."""
    data, kind = arr.data, arr.kind
    if kind == "b1":
        return data.view(np.uint8), "u1"
    if kind == "u8":
        return data.view(np.int64), "i8"  # ids >= 2**63 read as negative: out of range either way
    if kind == "u2":
        return data.astype(np.int32), "i4"
    if kind == "u4":
        return data.astype(np.int64), "i8"
    return data, kind


def _view(data, axis: int | None, xp) -> tuple[object, tuple]:
    """(data, (outer, K, inner, s_outer, s_class, s_inner)): axes before/after ``axis`` each collapse to one
    stride (contiguous, channels-last and sliced tensors run zero-copy); otherwise one contiguous copy."""
    for attempt in range(2):
        shape, strides = tuple(data.shape), element_strides(data)
        if axis is None:
            outer, k, inner = int(np.prod(shape, dtype=np.int64)), 1, 1
            s_outer, s_class, s_inner = collapsed_stride(shape, strides), 0, 0
        else:
            outer = int(np.prod(shape[:axis], dtype=np.int64))
            k = int(shape[axis])
            inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
            s_outer, s_class = collapsed_stride(shape[:axis], strides[:axis]), strides[axis]
            s_inner = collapsed_stride(shape[axis + 1:], strides[axis + 1:])
        ok = s_outer is not None and s_inner is not None and min(strides, default=0) >= 0
        if ok or attempt:
            break
        data = xp.ascontiguousarray(data)
    return data, (outer, k, inner, int(s_outer), int(s_class), int(s_inner))


def _side(x, device, name: str, mode: str, axis: int, num_classes: int, xp) -> Side:
    arr = as_array(x, device, name)
    data, kind = _normalise_kind(arr, xp)
    shape = tuple(data.shape)
    if mode == "argmax":
        if len(shape) == 0:
            raise ValueError(f"{name}: scores need a class axis (axis={axis}) but got a scalar")
        if not -len(shape) <= axis < len(shape):
            raise ValueError(f"{name}: axis {axis} is out of range for shape {shape}")
        ax = axis % len(shape)
        if shape[ax] != num_classes:
            raise ValueError(f"{name}: the class axis (axis={axis}) of shape {shape} has {shape[ax]} entries, "
                             f"but num_classes={num_classes}")
        data, view = _view(data, ax, xp)
        pixels = shape[:ax] + shape[ax + 1:]
    else:
        data, view = _view(data, None, xp)
        pixels = shape
    return Side(data, kind, mode, view, pixels)


def _weights(sample_weight, device, n: int, xp):
    """None, or the weights as a contiguous float32/float64 array of 1 or n elements (Keras flattens them)."""
    if sample_weight is None:
        return None
    arr = as_array(sample_weight, device, "sample_weight")
    data = arr.data
    if arr.size not in (1, n):
        raise ValueError(f"sample_weight has {arr.size} elements (shape {arr.shape}); it must be a scalar or have "
                         f"one weight per label ({n})")
    if arr.kind == "f2":
        data = data.view(np.float16).astype(np.float32)
    elif arr.kind == "bf2":
        data = (data.astype(np.uint32) << 16).view(np.float32)
    elif arr.kind not in ("f4", "f8"):
        data = data.astype(np.float64)
    data = data.reshape(-1)
    if device.kind != "cpu" or not data.flags.c_contiguous:
        data = xp.ascontiguousarray(data)
    return data


def _squeezed(shape: tuple) -> tuple:
    return tuple(d for d in shape if d != 1)


def _prepare(y_true, y_pred, sample_weight, device, num_classes: int, *, sparse_y_true=True, sparse_y_pred=True,
             axis=-1, threshold=None, xp=None) -> Batch:
    """Validate a batch and describe it for the op (raises before any state is touched)."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"axis must be an integer (got {axis!r})")
    xp = xp if xp is not None else _xp(device)
    t = _side(y_true, device, "y_true", "ids" if sparse_y_true else "argmax", int(axis), num_classes, xp)
    p_mode = "threshold" if threshold is not None else ("ids" if sparse_y_pred else "argmax")
    p = _side(y_pred, device, "y_pred", p_mode, int(axis), num_classes, xp)
    if t.n != p.n or _squeezed(t.pixels) != _squeezed(p.pixels):
        raise ValueError(f"y_true and y_pred disagree: labels of shape {t.pixels} against predictions of shape "
                         f"{p.pixels} (after any argmax over the class axis)")
    return Batch(t, p, _weights(sample_weight, device, t.n, xp))


def _xp(device):
    if device.kind == "cpu":
        return np
    from gpumetrics._cuda._runtime import get_runtime  # noqa: PLC0415

    return get_runtime().xp


# ------------------------------------------------------------------------------------------ update


def _update(device, batch: Batch, num_classes: int, ignore_class, counts, sums, invalid, threshold=0.5,
            xp=None) -> None:
    """One fused pass of the batch into ``counts`` (unweighted, int64) or ``sums`` (weighted, float64)."""
    t, p = batch.y_true, batch.y_pred
    if t.n == 0:
        return
    t_data, p_data = t.data, p.data
    if device.kind != "cpu":
        # Device kernels take a contiguous base from the first element plus element strides.
        xp = xp if xp is not None else _xp(device)
        t_data, p_data = flat_base(t_data, xp), flat_base(p_data, xp)
    op = _dispatch.op(device, "confusion_matrix")
    op(t_data, t.kind, t.mode, t.view, p_data, p.kind, p.mode, p.view,
       0.5 if threshold is None else float(threshold), batch.weights, num_classes, ignore_class, counts, sums,
       invalid)


# ------------------------------------------------------------------------------------------ compute


def _total(state: dict, xp):
    """The exact matrix: int64 counts plus float64 weighted sums, as float64."""
    return state["confusion_counts"].astype(np.float64) + state["confusion_sums"]


def _per_class(total, xp):
    """(tp, den) per class in float64: diagonal, and row sum + column sum - diagonal (= TP + FP + FN)."""
    tp = total.diagonal().copy()
    return tp, total.sum(axis=0) + total.sum(axis=1) - tp


def _compute_iou(total, target_ids, dtype, xp):
    """Keras' IoU result over ``target_ids`` (duplicates count twice) in ``dtype`` (float32 by default)."""
    tp, den = _per_class(total, xp)
    idx = xp.asarray(np.asarray(target_ids, dtype=np.int64))
    tp, den = tp[idx].astype(dtype), den[idx].astype(dtype)
    eps, tiny = dtype(EPSILON), dtype(1e-9)
    valid = den > tiny
    iou = xp.where(valid, tp / (den + eps), dtype(0))
    count = valid.astype(dtype).sum()
    return xp.asarray(iou.sum() / (count + eps), dtype=dtype)


def _per_class_ratio(numerator, denominator, dtype, xp):
    """numerator / denominator per class in ``dtype``, 0 where the denominator is 0 (no pixels)."""
    num, den = numerator.astype(dtype), denominator.astype(dtype)
    safe = xp.where(den == 0, dtype(1), den)
    return xp.where(den == 0, dtype(0), num / safe)


def per_class_iou(total, dtype, xp):
    """IoU of every class (tp / (tp + fp + fn)); 0 for a class absent from truth and predictions."""
    tp, den = _per_class(total, xp)
    return _per_class_ratio(tp, den, dtype, xp)


def per_class_precision(total, dtype, xp):
    """tp / (tp + fp) per class (column-wise); 0 for a class never predicted."""
    tp, _ = _per_class(total, xp)
    return _per_class_ratio(tp, total.sum(axis=0), dtype, xp)


def per_class_recall(total, dtype, xp):
    """tp / (tp + fn) per class (row-wise); 0 for a class absent from the labels."""
    tp, _ = _per_class(total, xp)
    return _per_class_ratio(tp, total.sum(axis=1), dtype, xp)


def _normalize(total, normalize, dtype, xp):
    """The matrix as counts (float64, exact) or normalised over true rows, predicted columns or all (dtype)."""
    if normalize is None:
        return total
    if normalize == "true":
        return _per_class_ratio(total, total.sum(axis=1, keepdims=True) + 0 * total, dtype, xp)
    if normalize == "pred":
        return _per_class_ratio(total, total.sum(axis=0, keepdims=True) + 0 * total, dtype, xp)
    return _per_class_ratio(total, total.sum() + 0 * total, dtype, xp)


# ------------------------------------------------------------------------------------------ one-shot


def _one_shot(y_true, y_pred, sample_weight, num_classes, ignore_class, sparse_y_true, sparse_y_pred, axis,
              threshold=None):
    num_classes = _validate_num_classes(num_classes)
    ignore_class = _validate_class_id(ignore_class, "ignore_class")
    device = _dispatch.common_device(y_true=y_true, y_pred=y_pred, sample_weight=sample_weight)
    xp = _xp(device)
    batch = _prepare(y_true, y_pred, sample_weight, device, num_classes, sparse_y_true=sparse_y_true,
                     sparse_y_pred=sparse_y_pred, axis=axis, threshold=threshold, xp=xp)
    counts = xp.zeros((num_classes, num_classes), np.int64)
    sums = xp.zeros((num_classes, num_classes), np.float64)
    invalid = xp.zeros(len(INVALID_REASONS), np.uint64)
    _update(device, batch, num_classes, ignore_class, counts, sums, invalid, threshold, xp)
    bad = invalid if device.kind == "cpu" else _host(invalid)
    if bad.any():
        from gpumetrics._state import InvalidInputError  # noqa: PLC0415

        raise InvalidInputError("invalid input: " + "; ".join(
            f"{int(c)} {r}" for c, r in zip(bad, INVALID_REASONS) if c))
    return counts.astype(np.float64) + sums, xp


def _host(array):
    from gpumetrics._cuda._runtime import get_runtime  # noqa: PLC0415

    return get_runtime().to_host(array)


def confusion_matrix(y_true, y_pred, num_classes, sample_weight=None, ignore_class=None, normalize=None,
                     sparse_y_true=True, sparse_y_pred=True, axis=-1, dtype=np.float32):
    """C x C confusion matrix of one batch (rows: true class, columns: predicted class), on the input's device.

    ``normalize=None`` gives the counts (or weight sums) as float64, exact; ``"true"`` divides each row by
    its sum, ``"pred"`` each column, ``"all"`` everything by the total (0 where a sum is 0), in ``dtype``.
    """
    _validate_normalize(normalize)
    total, xp = _one_shot(y_true, y_pred, sample_weight, num_classes, ignore_class, sparse_y_true,
                          sparse_y_pred, axis)
    return _normalize(total, normalize, np.dtype(dtype).type, xp)


def iou(y_true, y_pred, num_classes, target_class_ids, sample_weight=None, ignore_class=None, sparse_y_true=True,
        sparse_y_pred=True, axis=-1, dtype=np.float32):
    """Keras' IoU of one batch: mean IoU over ``target_class_ids`` of the classes that occur (module docstring)."""
    num_classes = _validate_num_classes(num_classes)
    ids = _validate_target_ids(target_class_ids, num_classes, _validate_class_id(ignore_class, "ignore_class"))
    total, xp = _one_shot(y_true, y_pred, sample_weight, num_classes, ignore_class, sparse_y_true,
                          sparse_y_pred, axis)
    return _compute_iou(total, ids, np.dtype(dtype).type, xp)


def mean_iou(y_true, y_pred, num_classes, sample_weight=None, ignore_class=None, sparse_y_true=True,
             sparse_y_pred=True, axis=-1, dtype=np.float32):
    """Keras' MeanIoU of one batch: the IoU over every class that occurs in the labels or predictions."""
    return iou(y_true, y_pred, num_classes, range(_validate_num_classes(num_classes)), sample_weight,
               ignore_class, sparse_y_true, sparse_y_pred, axis, dtype)
