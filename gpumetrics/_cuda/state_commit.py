"""Launcher for kernels/state_commit.cu (mirror: gpumetrics/_cpu/state_commit.py)."""
from __future__ import annotations

import numpy as np

from gpumetrics._cuda._launch import grid_for
from gpumetrics._cuda._runtime import get_runtime

KERNELS = ("state_commit",)
BLOCK = 256


def state_commit(state_int, scratch_int, state_float, scratch_float, invalid, rejected) -> None:
    """Add the scratch buffers to the state if every invalid counter is 0, else add them to ``rejected``."""
    kernel = get_runtime().kernel("state_commit", "state_commit")
    n = max(state_int.size, state_float.size)
    block = max(BLOCK, 32 * -(-invalid.size // 32))  # thread r of block 0 moves counter r
    kernel((grid_for(n, block),), (block,),
           (state_int, scratch_int, np.int64(state_int.size), state_float, scratch_float,
            np.int64(state_float.size), invalid, np.int32(invalid.size), rejected))
