"""gpumetrics: Keras-style metrics computed where the data lives (CUDA kernels on GPU, Numba on CPU)."""
from gpumetrics._state import InvalidInputError
from gpumetrics.metrics.base import Metric, Variable

__version__ = "0.1.0"

__all__ = [
    "InvalidInputError",
    "Metric",
    "Variable",
]
