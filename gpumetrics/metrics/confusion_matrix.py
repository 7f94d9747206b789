"""ConfusionMatrix (beyond Keras): the exact C x C matrix, optionally normalised, and per-class vectors from it."""
from __future__ import annotations

from gpumetrics.functional import confusion as F
from gpumetrics.metrics.iou import _ConfusionBase


class ConfusionMatrix(_ConfusionBase):
    """Streaming C x C confusion matrix: ``cm[t, q]`` = pixels (or weight) with true class t, predicted q.

    Same inputs and per-pixel rules as :class:`gpumetrics.metrics.iou.MeanIoU` (class ids of any integer dtype
    or scores reduced by a fused first-index argmax along ``axis``; ``ignore_class`` skips pixels; invalid ids
    reject the batch). State: int64 counts and float64 weighted sums, exact.

    Parameters
    ----------
    num_classes : int
    ignore_class : int, optional
    normalize : {None, "true", "pred", "all"}
        ``None``: ``result()`` is the matrix as float64 (exact counts up to 2**53). ``"true"``: each row divided
        by its sum (recall-like); ``"pred"``: each column by its sum (precision-like); ``"all"``: by the total;
        in the compute dtype (float32, or float64 with ``dtype="float64"``), 0 where a sum is 0.

    Examples
    --------
    >>> m = ConfusionMatrix(3)
    >>> m.update_state([0, 1, 2, 2], [0, 2, 2, 1])
    >>> m.result().astype(int).tolist()
    [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    >>> m.iou().tolist()
    [1.0, 0.0, 0.3333333432674408]
    """

    def __init__(self, num_classes, ignore_class=None, normalize=None, sparse_y_true=True, sparse_y_pred=True,
                 axis=-1, name=None, dtype=None):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)
        self.normalize = F._validate_normalize(normalize)

    def _compute(self, state, xp):
        return F._normalize(F._total(state, xp), self.normalize, self._compute_dtype, xp)

    def _vector(self, fn):
        state, xp = self._state()
        return fn(F._total(state, xp), self._compute_dtype, xp)

    def iou(self):
        """Per-class IoU ``tp / (tp + fp + fn)``, 0 for a class absent from labels and predictions."""
        return self._vector(F.per_class_iou)

    def precision(self):
        """Per-class precision ``tp / (tp + fp)`` (column-wise), 0 for a class never predicted."""
        return self._vector(F.per_class_precision)

    def recall(self):
        """Per-class recall ``tp / (tp + fn)`` (row-wise), 0 for a class absent from the labels."""
        return self._vector(F.per_class_recall)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes, "ignore_class": self.ignore_class,
                "normalize": self.normalize, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}
