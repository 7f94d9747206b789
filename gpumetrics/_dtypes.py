"""Element kinds: the one table that maps array dtypes to what the kernels read.

Every kernel reads its inputs as they are stored, never widened in memory. An input is described by its
*kind*: a short name that picks the C++ element type on the GPU and the reading rule on the CPU. 16-bit
floats are passed as raw 16-bit words (kind ``f16`` or ``bf16``) and widened in registers on both paths,
because Numba cannot load float16 arrays and numpy has no bfloat16.
"""
from __future__ import annotations

import numpy as np

# kind -> C++ type name used in template instantiations (kernels/gm_common.cuh defines the two tags).
CUDA_TYPE = {
    "b1": "bool",
    "u1": "unsigned char",
    "i1": "signed char",
    "i2": "short",
    "u2": "unsigned short",
    "i4": "int",
    "u4": "unsigned int",
    "i8": "long long",
    "u8": "unsigned long long",
    "f2": "gm_half",
    "bf2": "gm_bfloat16",
    "f4": "float",
    "f8": "double",
}
# kind -> runtime code of kernels that switch on the kind (gm_kind in kernels/gm_common.cuh).
KIND_CODE = {"b1": 0, "u1": 1, "i1": 2, "i2": 3, "u2": 4, "i4": 5, "u4": 6, "i8": 7, "u8": 8,
             "f2": 9, "bf2": 10, "f4": 11, "f8": 12}
FLOAT_KINDS = frozenset({"f2", "bf2", "f4", "f8"})
INT_KINDS = frozenset({"b1", "u1", "i1", "i2", "u2", "i4", "u4", "i8", "u8"})
# Kinds a label / class-id input may have (integral floats are checked value by value).
LABEL_KINDS = INT_KINDS | FLOAT_KINDS


def kind_of(dtype) -> str:
    """Kind of a numpy-like dtype (numpy, cupy, ml_dtypes); ``TypeError`` for non-numeric dtypes."""
    name = str(getattr(dtype, "name", dtype))
    if name == "bfloat16":
        return "bf2"
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unsupported dtype {name!r}") from None
    if dt.kind == "b":
        return "b1"
    if dt.kind in "iuf" and dt.itemsize in (1, 2, 4, 8) and not (dt.kind == "f" and dt.itemsize == 1):
        return f"{dt.kind}{dt.itemsize}"
    raise TypeError(f"dtype {dt} is not numeric (expected bool, integer or float)")


def raw_view(array, kind: str):
    """The array as the kernels read it: 16-bit floats as uint16 words, everything else unchanged."""
    if kind in ("f2", "bf2"):
        return array.view(np.uint16)
    return array


def is_float_kind(kind: str) -> bool:
    return kind in FLOAT_KINDS
