"""Launcher for kernels/class_match.cu (mirror: gpumetrics/_cpu/class_match.py)."""
from __future__ import annotations

import numpy as np

from gpumetrics._cuda._launch import grid_for
from gpumetrics._cuda._runtime import get_runtime
from gpumetrics._cuda.elementwise_sum import _operand

KERNELS = ("class_match",)
BLOCK = 256

MODE_ARGMAX, MODE_TOP_K, MODE_SORTED_IDS = range(3)


def class_match(scores, class_stride, n_classes, target, target_class_stride, target_one_hot, w, rows, cols,
                mode, k, scale, total, count, invalid) -> None:
    """total += scale * sum(w * match(row)); count += scale * sum(w); see kernels/class_match.cu."""
    n = rows * cols
    if n == 0:
        return
    kernel = get_runtime().kernel("class_match", "class_match")
    kernel((grid_for(n, BLOCK),), (BLOCK,),
           (*_operand(scores), np.int64(class_stride), np.int64(n_classes), *_operand(target),
            np.int64(target_class_stride), np.int32(target_one_hot), *_operand(w), np.int64(rows),
            np.int64(cols), np.int32(mode), np.int64(k), np.float64(scale), total, count, invalid))
