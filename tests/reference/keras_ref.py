"""Run real Keras 3 (CPU torch backend) on the same batches a test streams through gpumetrics."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def keras():
    """The keras module; with CI=true a missing Keras fails the run instead of skipping."""
    try:
        import keras as _keras
    except ImportError:
        if _CI:
            raise
        pytest.skip("keras not installed")
    return _keras


def keras_metric(class_name: str, **kwargs):
    return getattr(keras().metrics, class_name)(**kwargs)


def keras_result(class_name: str, batches, **kwargs) -> np.ndarray:
    """Keras' result after streaming ``batches`` (tuples of update_state arguments; None weights dropped)."""
    metric = keras_metric(class_name, **kwargs)
    for batch in batches:
        args = list(batch)
        while args and args[-1] is None:
            args.pop()
        metric.update_state(*args)
    return np.asarray(keras().ops.convert_to_numpy(metric.result()))
