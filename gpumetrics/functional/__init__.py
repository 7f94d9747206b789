"""One-shot functions: a metric's value for one set of arrays, on the arrays' device.

Each family's module also holds the stages its metric classes share (``_validate_*``, ``_update``,
``_compute``); the names below are the public, stateless entry points.
"""
from gpumetrics.functional.confusion import confusion_matrix, iou, mean_iou
from gpumetrics.functional.f_score import f1_score, fbeta_score
from gpumetrics.functional.ranking import exact_average_precision, exact_roc_auc
from gpumetrics.functional.threshold import auc, pr_auc, precision_recall_curve, roc_auc, roc_curve

__all__ = [
    "auc",
    "confusion_matrix",
    "exact_average_precision",
    "exact_roc_auc",
    "f1_score",
    "fbeta_score",
    "iou",
    "mean_iou",
    "pr_auc",
    "precision_recall_curve",
    "roc_auc",
    "roc_curve",
]
