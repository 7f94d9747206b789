"""Shapes and strides: Keras' rank alignment, and views of inputs as the 2-D grids kernels walk.

Kernels address an input as ``base[r * stride_r + c * stride_c]`` over a ``rows x cols`` grid. Any array
whose axes fall into two groups that each collapse to a single stride runs zero-copy that way: contiguous
and channels-last tensors, row slices, and broadcast weights (stride 0). Anything else is copied once
(documented in the README).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from gpumetrics._dispatch import Array


class Strided(NamedTuple):
    """One input of a 2-D kernel grid: a flat base array plus element strides along rows and columns."""

    base: object
    kind: str
    stride_r: int
    stride_c: int
    inner: tuple = ()  # element strides of the trailing axes the kernel walks itself (e.g. the class axis)


def align_ranks(a_shape: tuple, b_shape: tuple, expand_rank_1: bool = True) -> tuple[tuple, tuple]:
    """Keras' "squeeze or expand last dim": shapes of (a, b) after alignment (spec 1.2)."""
    ra, rb = len(a_shape), len(b_shape)
    if ra == rb + 1 and a_shape[-1] == 1:
        if rb == 1 and expand_rank_1:
            return a_shape, b_shape + (1,)
        return a_shape[:-1], b_shape
    if rb == ra + 1 and b_shape[-1] == 1:
        if ra == 1 and expand_rank_1:
            return a_shape + (1,), b_shape
        return a_shape, b_shape[:-1]
    return a_shape, b_shape


def element_strides(data) -> tuple:
    itemsize = data.dtype.itemsize
    return tuple(s // itemsize for s in data.strides)


def collapsed_stride(shape: tuple, strides: tuple) -> int | None:
    """Single element stride of axes that collapse into one (row-major order), else None.

    Axes of length 1 never matter; with none left (one element) the stride is 1, the contiguous one.
    """
    dims = [(n, s) for n, s in zip(shape, strides) if n != 1]
    if not dims:
        return 1
    for (n_outer, s_outer), (n_inner, s_inner) in zip(dims, dims[1:]):
        if s_outer != s_inner * n_inner:
            return None
    return dims[-1][1]


def _split(shape: tuple, strides_list: list[tuple]) -> tuple[int, list[tuple[int, int]]] | None:
    """First axis k where every array's axes [:k] and [k:] each collapse; (k, [(stride_r, stride_c)])."""
    for k in range(len(shape) + 1):
        pairs = []
        for strides in strides_list:
            sr = collapsed_stride(shape[:k], strides[:k])
            sc = collapsed_stride(shape[k:], strides[k:])
            if sr is None or sc is None:
                break
            pairs.append((sr, sc))
        else:
            return k, pairs
    return None


def flat_base(data, xp):
    """1-D view over every element an array (with non-negative strides) can reach, from its first element."""
    if data.size == 0:
        return data.reshape(-1)
    strides = element_strides(data)
    extent = 1 + sum((n - 1) * s for n, s in zip(data.shape, strides))
    if xp is np or isinstance(data, np.ndarray):
        return np.lib.stride_tricks.as_strided(data, (extent,), (data.dtype.itemsize,), subok=True)
    return xp.lib.stride_tricks.as_strided(data, (extent,), (data.dtype.itemsize,))


def grid(shape: tuple, inputs: list[Array | None], xp, inner_axes: list[int] | None = None
         ) -> tuple[int, int, list[Strided | None]]:
    """View each input (already broadcast to ``shape``, plus ``inner_axes[i]`` extra trailing axes that the
    kernel walks itself, e.g. a class axis) as a rows x cols grid. Copies only inputs that cannot collapse.
    """
    inner_axes = inner_axes or [0] * len(inputs)
    present = [(i, x) for i, x in enumerate(inputs) if x is not None]
    datas = {i: x.data for i, x in present}

    def outer_strides(i):
        strides = element_strides(datas[i])
        return strides[:len(strides) - inner_axes[i]] if inner_axes[i] else strides

    for attempt in range(2):
        for i, _ in present:
            if any(s < 0 for s in element_strides(datas[i])):
                datas[i] = xp.ascontiguousarray(datas[i])
        found = _split(tuple(shape), [outer_strides(i) for i, _ in present])
        if found is not None:
            break
        # Some input's axes do not collapse: copy each such input once, contiguous, and try again.
        for i, _ in present:
            if _split(tuple(shape), [outer_strides(i)]) is None:
                datas[i] = xp.ascontiguousarray(datas[i])
    else:
        raise AssertionError("contiguous arrays always collapse")
    k, pairs = found
    rows = int(np.prod(shape[:k], dtype=np.int64))
    cols = int(np.prod(shape[k:], dtype=np.int64))
    out: list[Strided | None] = [None] * len(inputs)
    for (i, x), (sr, sc) in zip(present, pairs):
        strides = element_strides(datas[i])
        inner = tuple(int(s) for s in strides[len(strides) - inner_axes[i]:]) if inner_axes[i] else ()
        out[i] = Strided(flat_base(datas[i], xp), x.kind, int(sr), int(sc), inner)
    return rows, cols, out
