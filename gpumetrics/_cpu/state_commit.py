"""CPU commit (mirror of gpumetrics/_cuda/state_commit.py); the state is small, so numpy does it."""
from __future__ import annotations


def state_commit(state_int, scratch_int, state_float, scratch_float, invalid, rejected) -> None:
    """Add the scratch buffers to the state if every invalid counter is 0, else add them to ``rejected``."""
    if invalid.any():
        rejected += invalid
        return
    state_int += scratch_int
    state_float += scratch_float
