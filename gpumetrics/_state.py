"""Metric state: declared once, stored in one flat buffer per dtype, updated only through a checked commit.

A metric declares each piece of state with ``add_state(name, shape, dtype)``. The values live in at most two
flat buffers on the state's device, one int64 (exact counts) and one float64 (weighted sums); each state is a
view into its buffer. That makes reset, merge, export and the per-batch commit generic and cheap: one kernel
launch commits a whole batch, whatever the metric.

Every update accumulates the batch into a *scratch* copy of the buffers plus a vector of invalid-value
counters, then commits: the scratch is added to the state only if every counter is 0. On the GPU the commit
is a kernel (no host synchronisation) that otherwise adds the counters to a sticky ``rejected`` vector,
which ``result()`` reports; on the CPU the update raises at once. Either way a bad batch leaves the state as
it was.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpumetrics._dispatch import CPU, Device

INT = np.dtype(np.int64)
FLOAT = np.dtype(np.float64)


class InvalidInputError(ValueError):
    """A batch held values the metric cannot count (NaN, class ids out of range, ...); it was not counted."""


@dataclass(frozen=True)
class StateSpec:
    name: str
    shape: tuple
    dtype: np.dtype  # INT or FLOAT
    merge: str = "sum"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


class StateStore:
    """The buffers of one metric on one device, and the views that name their parts."""

    def __init__(self, specs: list[StateSpec], device: Device, n_reasons: int):
        self.specs = list(specs)
        self.device = device
        self.xp = array_module(device)
        self.offsets = {}
        sizes = {INT: 0, FLOAT: 0}
        for spec in self.specs:
            self.offsets[spec.name] = sizes[spec.dtype]
            sizes[spec.dtype] += spec.size
        self.buffers = {dt: self.xp.zeros(max(n, 1), dtype=dt) for dt, n in sizes.items()}
        self.sizes = sizes
        # Invalid-value counters that a GPU commit rejected (sticky until reset); unused on the CPU.
        self.rejected = self.xp.zeros(max(n_reasons, 1), dtype=np.uint64)

    def views(self, buffers=None) -> dict:
        """{state name: array view} into ``buffers`` (default: the state itself)."""
        buffers = buffers or self.buffers
        return {
            s.name: buffers[s.dtype][self.offsets[s.name]:self.offsets[s.name] + s.size].reshape(s.shape)
            for s in self.specs
        }

    def scratch(self) -> dict:
        return {dt: self.xp.zeros_like(buf) for dt, buf in self.buffers.items()}

    def reset(self) -> None:
        for buf in self.buffers.values():
            buf.fill(0)
        self.rejected.fill(0)


def array_module(device: Device):
    if device.kind == "cpu":
        return np
    from gpumetrics._cuda._runtime import get_runtime  # noqa: PLC0415

    return get_runtime().xp


def host_zeros(specs: list[StateSpec]) -> dict:
    """State of a metric that has seen nothing, as numpy arrays (what ``result()`` reads before any update)."""
    store = StateStore(specs, CPU, 0)
    return store.views()
