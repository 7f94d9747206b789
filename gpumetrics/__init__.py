"""gpumetrics: Keras-style metrics computed where the data lives (CUDA kernels on GPU, Numba on CPU).

Importing gpumetrics imports neither cupy nor torch; a CUDA input brings CuPy in on first use.
"""
from gpumetrics import functional
from gpumetrics._dispatch import array_module_of as xp
from gpumetrics._state import InvalidInputError
from gpumetrics.metrics.accuracy import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
)
from gpumetrics.metrics.base import Metric, Variable
from gpumetrics.metrics.confusion_matrix import ConfusionMatrix
from gpumetrics.metrics.f_score import F1Score, FBetaScore
from gpumetrics.metrics.iou import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from gpumetrics.metrics.mean import Mean, MeanMetricWrapper, Sum
from gpumetrics.metrics.regression import MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError
from gpumetrics.metrics.threshold import (
    AUC,
    FalseNegatives,
    FalsePositives,
    Precision,
    PrecisionAtRecall,
    Recall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    TrueNegatives,
    TruePositives,
)

__version__ = "0.1.0"

__all__ = [
    "Accuracy",
    "AUC",
    "BinaryAccuracy",
    "BinaryIoU",
    "CategoricalAccuracy",
    "ConfusionMatrix",
    "F1Score",
    "FalseNegatives",
    "FalsePositives",
    "FBetaScore",
    "functional",
    "InvalidInputError",
    "IoU",
    "Mean",
    "MeanAbsoluteError",
    "MeanIoU",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "Metric",
    "OneHotIoU",
    "OneHotMeanIoU",
    "Precision",
    "PrecisionAtRecall",
    "Recall",
    "RecallAtPrecision",
    "RootMeanSquaredError",
    "SensitivityAtSpecificity",
    "SparseCategoricalAccuracy",
    "SparseTopKCategoricalAccuracy",
    "SpecificityAtSensitivity",
    "Sum",
    "TopKCategoricalAccuracy",
    "TrueNegatives",
    "TruePositives",
    "Variable",
    "xp",
]
