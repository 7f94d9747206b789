"""The IoU family (Keras spec 2.9): IoU, MeanIoU, BinaryIoU, OneHotIoU, OneHotMeanIoU.

All five accumulate one C x C confusion matrix (rows: true class, columns: predicted class) in a single fused
pass per batch (kernels/confusion_matrix.cu on the GPU, its Numba mirror on the CPU), then compute Keras'
result from it. See gpumetrics/functional/confusion.py for the per-pixel rules and the formula.

Deviations from Keras 3.15 (listed in the README):

- exact state: unweighted counts are int64, weighted sums float64 (Keras: int32 that wraps past 2**31);
- weights are honoured as given: ``dtype="int"`` (Keras' default) does **not** truncate fractional weights
  (Keras turns a weight of 0.3 into 0); ``dtype`` only picks the result type: float32, or float64 for
  ``dtype="float64"``;
- class ids outside ``[0, num_classes)`` (other than ``ignore_class``), fractional or NaN ids, NaN scores and
  negative / NaN / infinite weights make the batch invalid (reported, state unchanged) instead of being
  dropped or truncated silently; pixels with a zero weight are skipped unchecked;
- ``axis`` is used for the argmax only (Keras' ``result()`` fails for ``axis`` other than -1 or 0), so
  channel-first scores work: ``MeanIoU(19, sparse_y_pred=False, axis=1)`` on (B, C, H, W);
- a class axis whose length is not ``num_classes`` is an error (Keras drops the ids >= num_classes).
"""
from __future__ import annotations

import numpy as np

from gpumetrics._state import FLOAT, INT
from gpumetrics.functional import confusion as F
from gpumetrics.metrics.base import Metric

_INT_DTYPES = {"int": "int32", "int32": "int32", "int64": "int64", "int16": "int16", "int8": "int8",
               "uint8": "uint8"}
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


class _ConfusionBase(Metric):
    """A metric whose state is one exact C x C confusion matrix (int64 counts + float64 weighted sums)."""

    _invalid_reasons = F.INVALID_REASONS

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = F._validate_num_classes(num_classes)
        self.ignore_class = F._validate_class_id(ignore_class, "ignore_class")
        self.sparse_y_true = bool(sparse_y_true)
        self.sparse_y_pred = bool(sparse_y_pred)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError(f"axis must be an integer (got {axis!r})")
        self.axis = int(axis)
        self.add_state("confusion_counts", (self.num_classes, self.num_classes), INT)
        self.add_state("confusion_sums", (self.num_classes, self.num_classes), FLOAT)

    _threshold = None  # BinaryIoU thresholds y_pred instead of reading ids

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Add a batch: labels and predictions of any shape with the same number of pixels.

        Sparse sides are class ids of any integer dtype (read as stored) or integral floats; dense sides are
        scores whose ``axis`` has ``num_classes`` entries, reduced by a fused first-index argmax.
        ``sample_weight``: None, a scalar, or one weight per pixel. Synchronises nothing with the GPU.
        """
        device = self._device_for(y_true=y_true, y_pred=y_pred, sample_weight=sample_weight)
        batch = F._prepare(y_true, y_pred, sample_weight, device, self.num_classes,
                           sparse_y_true=self.sparse_y_true, sparse_y_pred=self.sparse_y_pred, axis=self.axis,
                           threshold=self._threshold)
        if batch.y_true.n == 0:
            return
        with self._batch(device, inputs=(y_true, y_pred)) as (scratch, invalid, xp):
            F._update(device, batch, self.num_classes, self.ignore_class, scratch["confusion_counts"],
                      scratch["confusion_sums"], invalid, self._threshold, xp)

    def total_confusion_matrix(self):
        """The accumulated matrix as float64 (exact counts plus weighted sums), on the state's device."""
        state, xp = self._state()
        return F._total(state, xp)


class _IoUDtype:
    """IoU dtype rules: Keras' integer default is accepted for config compatibility and never truncates."""

    def _resolve_dtype(self, dtype):
        if dtype is None:
            return "int32"
        name = str(getattr(dtype, "name", dtype))
        if name in _INT_DTYPES:
            return _INT_DTYPES[name]
        if name in _FLOAT_DTYPES:
            return name
        raise ValueError(f"dtype must be an integer or float dtype name (got {dtype!r})")


class IoU(_IoUDtype, _ConfusionBase):
    """Intersection-over-union for ``target_class_ids``, from the accumulated confusion matrix.

    For class c with ``tp = cm[c, c]`` and ``den = sum(cm[c, :]) + sum(cm[:, c]) - tp`` (TP + FP + FN), cast to
    float32: ``valid = den > 1e-9``, ``iou_c = tp / (den + 1e-7)`` where valid, else 0, and

        result = sum(iou_c over target_class_ids) / (count(valid over target_class_ids) + 1e-7)

    in float32 (float64 with ``dtype="float64"``). Classes that occur in neither labels nor predictions are
    left out of the mean; duplicate target ids count twice. ``y_true == ignore_class`` pixels are skipped.

    Examples
    --------
    >>> m = IoU(num_classes=2, target_class_ids=[0])
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> float(m.result())
    0.3333333432674408
    """

    _direction = "up"

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)
        self.target_class_ids = F._validate_target_ids(target_class_ids, self.num_classes, self.ignore_class)

    def _compute(self, state, xp):
        return F._compute_iou(F._total(state, xp), self.target_class_ids, self._compute_dtype, xp)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes,
                "target_class_ids": list(self.target_class_ids), "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class MeanIoU(IoU):
    """Mean IoU over every class that occurs (``IoU`` with ``target_class_ids = range(num_classes)``).

    Examples
    --------
    >>> m = MeanIoU(num_classes=2)
    >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    >>> float(m.result())
    0.3333333432674408

    Segmentation: stream (B, H, W) uint8 masks with ``ignore_class=255``, or (B, C, H, W) scores with
    ``sparse_y_pred=False, axis=1``; the state stays C x C however many pixels pass through.
    """

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, list(range(F._validate_num_classes(num_classes))), name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred,
                         axis=axis)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("target_class_ids")
        return config


class BinaryIoU(IoU):
    """IoU of a binary task: ``y_pred`` scores become class 1 when ``fl32(y_pred) >= threshold`` (non-strict,
    unlike BinaryAccuracy and F1), else class 0; ``y_true`` holds class ids 0 or 1.

    Examples
    --------
    >>> m = BinaryIoU(target_class_ids=[0, 1], threshold=0.3)
    >>> m.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7])
    >>> float(m.result())
    0.3333333432674408
    """

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(2, target_class_ids, name=name, dtype=dtype)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise ValueError(f"threshold must be a number (got {threshold!r})")
        self.threshold = threshold
        self._threshold = float(threshold)

    def get_config(self) -> dict:
        return {"target_class_ids": list(self.target_class_ids), "threshold": self.threshold, "name": self.name,
                "dtype": self.dtype}


class OneHotIoU(IoU):
    """IoU for one-hot ``y_true`` (reduced by a first-index argmax along ``axis``); ``y_pred`` scores likewise
    unless ``sparse_y_pred=True``."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("sparse_y_true")
        return config


class OneHotMeanIoU(MeanIoU):
    """MeanIoU for one-hot ``y_true`` (first-index argmax along ``axis``)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("sparse_y_true")
        return config
