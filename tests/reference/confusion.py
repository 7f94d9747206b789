"""Independent references for confusion matrices, IoU and F-scores: plain numpy (Keras' formulas written out)
and scikit-learn. Real Keras runs through reference/keras_ref.py."""
from __future__ import annotations

import numpy as np

EPS = 1e-7


def confusion(y_true, y_pred, num_classes, weights=None, ignore_class=None):
    """C x C float64 matrix by np.add.at over valid pixels (rows: true, columns: predicted)."""
    t = np.asarray(y_true).reshape(-1).astype(np.float64)
    p = np.asarray(y_pred).reshape(-1).astype(np.float64)
    w = np.ones(t.size) if weights is None else np.broadcast_to(np.asarray(weights, np.float64).reshape(-1), t.shape)
    keep = (t >= 0) & (t < num_classes) & (p >= 0) & (p < num_classes) & (w != 0)
    if ignore_class is not None:
        keep &= t != ignore_class
    cm = np.zeros((num_classes, num_classes))
    np.add.at(cm, (t[keep].astype(np.int64), p[keep].astype(np.int64)), w[keep])
    return cm


def iou_from_cm(cm, target_ids, dtype=np.float32):
    """Keras 3.15 IoU.result() on a float64 matrix, in float32 (the spec's formula)."""
    cm = np.asarray(cm, np.float64)
    tp = np.diag(cm)
    den = cm.sum(0) + cm.sum(1) - tp
    idx = np.asarray(target_ids)
    tp, den = tp[idx].astype(dtype), den[idx].astype(dtype)
    valid = den > dtype(1e-9)
    iou = np.where(valid, tp / (den + dtype(EPS)), dtype(0))
    return dtype(iou.sum() / (valid.astype(dtype).sum() + dtype(EPS)))


def fbeta_sums(y_true, y_pred, weights=None, threshold=None):
    """Keras' per-class TP, FP, FN, support in float64 from float32-cast inputs."""
    y = np.asarray(y_true, np.float32).astype(np.float64)
    s = np.asarray(y_pred, np.float32)
    if threshold is None:
        pred = (s >= s.max(axis=1, keepdims=True)) & (np.abs(s) > np.float32(1e-9))
    else:
        pred = s > np.float32(threshold)
    pred = pred.astype(np.float64)
    w = np.ones((y.shape[0], 1))
    if weights is not None:
        w = np.asarray(weights, np.float32).astype(np.float64).reshape(-1, 1)
    return ((w * pred * y).sum(0), (w * pred * (1 - y)).sum(0), (w * (1 - pred) * y).sum(0), (w * y).sum(0))


def fbeta_from_sums(tp, fp, fn, support, beta=1.0, average=None, dtype=np.float32):
    """Keras' FBetaScore.result() formula, in float32."""
    if average == "micro":
        tp, fp, fn, support = (np.asarray([np.sum(x)]) for x in (tp, fp, fn, support))
    tp, fp, fn, support = (np.asarray(x).astype(dtype) for x in (tp, fp, fn, support))
    eps = dtype(EPS)
    p = tp / (tp + fp + eps)
    r = tp / (tp + fn + eps)
    f = (p * r) / (dtype(beta * beta) * p + r + eps) * dtype(1 + beta * beta)
    if average == "weighted":
        return dtype((f * (support / (support.sum() + eps))).sum())
    if average is not None:
        return dtype(f.mean())
    return f


def sklearn_confusion(y_true, y_pred, num_classes, weights=None, normalize=None):
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1),
                            labels=list(range(num_classes)), sample_weight=weights, normalize=normalize)


def sklearn_jaccard(y_true, y_pred, num_classes, weights=None):
    """Per-class IoU (zero_division=0) from scikit-learn's jaccard_score."""
    from sklearn.metrics import jaccard_score

    return jaccard_score(np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1),
                         labels=list(range(num_classes)), average=None, sample_weight=weights, zero_division=0)
