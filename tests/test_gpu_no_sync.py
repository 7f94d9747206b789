"""On a real GPU: update_state never synchronises with the host, for CuPy and for CUDA torch inputs.

CuPy: ``cupyx.allow_synchronize(False)`` raises on any device-to-host wait inside the block. torch:
``torch.cuda.set_sync_debug_mode("error")`` raises on synchronising torch calls. One update is also captured
in a CUDA graph, which fails if anything in it synchronises or allocates outside the graph's pool.
These tests carry the ``gpu`` marker and skip without a device (CI checks the same property under the
emulation, whose device arrays raise on host reads).
"""
from __future__ import annotations

import numpy as np
import pytest

import gpumetrics as gm

pytestmark = pytest.mark.gpu


def _cases():
    """(metric factory, y_true, y_pred) for one metric of every op family present."""
    rng = np.random.default_rng(0)
    y = (rng.random((64, 5)) < 0.3).astype(np.float32)
    p = rng.random((64, 5), dtype=np.float32)
    ids = rng.integers(0, 5, 64).astype(np.int32)
    cases = [
        (gm.MeanAbsoluteError, y, p),
        (gm.RootMeanSquaredError, y, p),
        (gm.BinaryAccuracy, y, p),
        (gm.SparseCategoricalAccuracy, ids, p),
        (lambda: gm.SparseTopKCategoricalAccuracy(k=2), ids, p),
    ]
    if hasattr(gm, "AUC"):
        cases.append((gm.AUC, y, p))
    if hasattr(gm, "MeanIoU"):
        cases.append((lambda: gm.MeanIoU(num_classes=5), ids, rng.integers(0, 5, 64).astype(np.int32)))
    return cases


@pytest.mark.parametrize("make,y_true,y_pred", _cases())
def test_cupy_update_does_not_synchronise(make, y_true, y_pred):
    cupy = pytest.importorskip("cupy")
    cupyx = pytest.importorskip("cupyx")
    metric = make()
    t, p = cupy.asarray(y_true), cupy.asarray(y_pred)
    metric.update_state(t, p)  # first update: compiles, allocates state
    cupy.cuda.Stream.null.synchronize()
    with cupyx.allow_synchronize(False):
        metric.update_state(t, p)
        metric.update_state(t, p)
    assert np.all(np.isfinite(cupy.asnumpy(metric.result())))


@pytest.mark.parametrize("make,y_true,y_pred", _cases())
def test_torch_update_does_not_synchronise_and_uses_torch_stream(make, y_true, y_pred):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA torch")
    metric = make()
    t, p = torch.from_numpy(y_true).cuda(), torch.from_numpy(y_pred).cuda()
    metric.update_state(t, p)
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        torch.cuda.set_sync_debug_mode("error")
        try:
            metric.update_state(t, p)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    stream.synchronize()
    reference = make()
    reference.update_state(y_true, y_pred)
    reference.update_state(y_true, y_pred)
    np.testing.assert_allclose(np.asarray(metric.result().get()), reference.result(), rtol=1e-6)


def test_update_can_be_captured_in_a_cuda_graph():
    cupy = pytest.importorskip("cupy")
    metric = gm.MeanSquaredError()
    t = cupy.asarray(np.arange(1024, dtype=np.float32))
    p = t + 1
    metric.update_state(t, p)
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        metric.update_state(t, p)
        graph = stream.end_capture()
    graph.launch(stream)
    stream.synchronize()
    assert float(metric.result().get()) == 1.0
