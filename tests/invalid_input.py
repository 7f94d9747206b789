"""The one check every metric's bad-value test makes: the batch is rejected and the state is unchanged."""
from __future__ import annotations

import pytest

import gpumetrics as gm


def assert_batch_rejected(metric, backend, good, bad, reason: str) -> None:
    """Feed ``good``, then ``bad``: on the CPU ``update_state`` raises at once; on a (emulated) GPU the batch is
    counted on the device and ``result()`` raises until ``reset_state()``. Either way the state afterwards
    equals the state after ``good`` alone."""
    metric.update_state(*[backend.to(x) for x in good])
    before = backend.host(metric.result()).copy()
    if backend.is_cuda:
        metric.update_state(*[backend.to(x) for x in bad])
        with pytest.raises(gm.InvalidInputError, match=reason):
            metric.result()
        metric.reset_state()
        metric.update_state(*[backend.to(x) for x in good])
    else:
        with pytest.raises(gm.InvalidInputError, match=reason):
            metric.update_state(*[backend.to(x) for x in bad])
    assert (backend.host(metric.result()) == before).all()
