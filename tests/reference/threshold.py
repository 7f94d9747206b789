"""Independent references for the threshold family: the spec's counting rule in plain numpy, real Keras,
and scikit-learn's exact ranking metrics."""
from __future__ import annotations

import numpy as np

from reference.keras_ref import keras_result


def spec_counts(y_true, y_pred, thresholds, sample_weight=None, even=None, epsilon=None):
    """TP, FP, TN, FN (float64) at ``thresholds`` (reporting order) by spec 1.4, flattened, no top_k.

    ``even`` / ``epsilon`` default to Keras' decision for a plain threshold list.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float32).reshape(-1)
    pos = np.asarray(y_true).reshape(-1) != 0
    w = np.ones(p.shape) if sample_weight is None else np.broadcast_to(
        np.asarray(sample_weight, np.float64), np.shape(y_pred)).reshape(-1)
    if even is None:
        even = t.size >= 3 and np.allclose(t, np.arange(t.size, dtype=np.float32) / (t.size - 1), atol=1e-7)
    if epsilon is None:
        epsilon = bool(t[0] < 0 or t[-1] > 1)
    if even:
        pc = np.clip(p, np.float32(0), np.float32(1))
        b = np.ceil(pc * np.float32(t.size - 1)).astype(np.int64) - 1  # float32 product, as Keras
        if epsilon:
            b = np.maximum(b, 0)
        above = np.arange(t.size)[None, :] <= b[:, None]
    else:
        above = p[:, None] > t.astype(np.float32)[None, :]
    tp = (w[:, None] * (above & pos[:, None])).sum(0)
    fp = (w[:, None] * (above & ~pos[:, None])).sum(0)
    fn = (w * pos).sum() - tp
    tn = (w * ~pos).sum() - fp
    return tp, fp, tn, fn


def keras_stream(class_name, batches, **kwargs):
    """Keras' result after streaming ``batches`` of (y_true, y_pred, sample_weight or None)."""
    return keras_result(class_name, [tuple(b) for b in batches], **kwargs)


def sklearn_roc_auc(y_true, y_score, sample_weight=None):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(y_true, y_score, sample_weight=sample_weight)


def sklearn_average_precision(y_true, y_score, sample_weight=None):
    from sklearn.metrics import average_precision_score

    return average_precision_score(y_true, y_score, sample_weight=sample_weight)


def bucket_edge_scores(n_thresholds: int, rng, n: int) -> np.ndarray:
    """Scores on and one ulp beside the float32 thresholds k/(T-1), plus 0, 1 and out-of-range values."""
    k = rng.integers(0, n_thresholds, n)
    t = (k / (n_thresholds - 1)).astype(np.float32)
    shift = rng.integers(-1, 2, n)
    t = np.where(shift > 0, np.nextafter(t, np.float32(2)), np.where(shift < 0, np.nextafter(t, np.float32(-1)), t))
    special = np.array([0.0, 1.0, -0.0, -0.5, 1.5, np.inf, -np.inf], np.float32)
    pick = rng.random(n) < 0.05
    t[pick] = special[rng.integers(0, special.size, pick.sum())]
    return t.astype(np.float32)
