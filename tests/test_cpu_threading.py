"""The Numba path under threads and fork: what DataLoader workers and thread pools do to a metric."""
from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

import gpumetrics as gm
from gpumetrics._cpu import _common


def _mae(seed: int) -> float:
    rng = np.random.default_rng(seed)
    a = rng.random(200_000, dtype=np.float32)
    metric = gm.MeanAbsoluteError()
    metric.update_state(a, a + np.float32(0.5))
    return float(metric.result())


def _child(queue):
    queue.put(_mae(1))


def test_forked_child_after_parallel_use(monkeypatch):
    monkeypatch.setattr(_common, "MIN_PART", 1024)  # make sure the parent starts its thread pool
    assert _mae(0) == pytest.approx(0.5)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0, "the forked child hung or died"
    assert queue.get(timeout=5) == pytest.approx(0.5)


def test_separate_metrics_in_concurrent_threads(monkeypatch):
    monkeypatch.setattr(_common, "MIN_PART", 1024)
    results = [None] * 4

    def work(i):
        results[i] = _mae(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == pytest.approx([0.5] * 4)
