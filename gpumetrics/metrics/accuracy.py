"""The accuracy family (Keras spec 2.3): elementwise (Accuracy, BinaryAccuracy) and per-row class matches."""
from __future__ import annotations

from gpumetrics.functional import accuracy as F
from gpumetrics.functional import regression as R
from gpumetrics.metrics.mean import Mean
from gpumetrics.metrics.regression import _PairMean


class Accuracy(_PairMean):
    """How often ``y_pred`` equals ``y_true``, elementwise (exact equality, compared as given).

    Examples
    --------
    >>> m = Accuracy()
    >>> m.update_state([1, 2, 3, 4], [0, 2, 3, 4])
    >>> float(m.result())
    0.75
    """

    _direction = "up"
    _func = R.FUNC_EQUAL

    def __init__(self, name: str = "accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


class BinaryAccuracy(_PairMean):
    """How often ``y_true == (y_pred > threshold)``, elementwise. Strict ``>``: a score equal to the
    threshold is class 0. Labels are not binarised (a soft label 0.7 never matches), as in Keras."""

    _direction = "up"
    _func = R.FUNC_BINARY_MATCH

    def __init__(self, name: str = "binary_accuracy", dtype=None, threshold: float = 0.5):
        super().__init__(name=name, dtype=dtype)
        self.threshold = float(threshold)

    def _threshold(self, y_pred) -> float:
        return R._threshold_in_dtype_of(self.threshold, y_pred.kind)

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}


class _MatchMean(Mean):
    """Shared update of the class-based accuracies."""

    _direction = "up"
    _invalid_reasons = F.MATCH_REASONS
    _mode = F.MODE_ARGMAX
    _sparse = False
    _flatten_sparse = False
    k = 1

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        device, xp, t, p, w = self._pair_inputs(y_true, y_pred, sample_weight)
        if self._sparse:
            batch = F._validate_sparse(t, p, w, xp, flatten=self._flatten_sparse)
        else:
            batch = F._validate_one_hot(t, p, w, xp)
        if self._mode != F.MODE_ARGMAX and p.ndim:
            F._check_k(self.k, p.shape[-1])
        if batch is None:
            return
        with self._batch(device, (y_true, y_pred, sample_weight)) as (state, invalid, xp):
            F._update(state, invalid, xp, batch, self._mode, self.k)


class CategoricalAccuracy(_MatchMean):
    """How often the first argmax of ``y_pred`` equals the first argmax of the one-hot ``y_true``."""

    def __init__(self, name: str = "categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


class SparseCategoricalAccuracy(_MatchMean):
    """How often the first argmax of ``y_pred`` equals the integer class id ``y_true``."""

    _sparse = True

    def __init__(self, name: str = "sparse_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


class TopKCategoricalAccuracy(_MatchMean):
    """How often the one-hot target is in the top ``k`` of ``y_pred`` (Keras ``in_top_k``: a target tied
    with the k-th largest score is a hit, so ties at the boundary all count)."""

    _mode = F.MODE_TOP_K

    def __init__(self, k: int = 5, name: str = "top_k_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.k = int(k)

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(_MatchMean):
    """How often the class id ``y_true`` is in the top ``k`` of ``y_pred`` (``in_top_k`` tie rule).

    With ``from_sorted_ids=True``, ``y_pred`` holds class ids sorted by score (N, >= k) and a hit means
    ``y_true`` is one of the first ``k``.
    """

    _sparse = True
    _flatten_sparse = True

    def __init__(self, k: int = 5, name: str = "sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids: bool = False):
        super().__init__(name=name, dtype=dtype)
        self.k = int(k)
        self.from_sorted_ids = bool(from_sorted_ids)
        self._mode = F.MODE_SORTED_IDS if self.from_sorted_ids else F.MODE_TOP_K

    def get_config(self) -> dict:
        config = {**super().get_config(), "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config
