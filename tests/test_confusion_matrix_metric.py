"""ConfusionMatrix (beyond Keras) against scikit-learn, the functional one-shot forms, and no host sync."""
from __future__ import annotations

import numpy as np
import pytest

from gpumetrics.functional import confusion as F
from gpumetrics.metrics.confusion_matrix import ConfusionMatrix
from gpumetrics.metrics.iou import MeanIoU
from reference.confusion import confusion, iou_from_cm, sklearn_confusion, sklearn_jaccard


def _data(rng, n, C, weights=False):
    t = rng.integers(0, C, n).astype(np.int64)
    p = np.where(rng.uniform(size=n) < 0.5, t, rng.integers(0, C, n)).astype(np.int64)
    w = rng.uniform(0, 2, n) if weights else None
    return t, p, w


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
@pytest.mark.parametrize("weights", [False, True])
def test_matches_sklearn_streamed(backend, normalize, weights):
    rng = np.random.default_rng(7)
    C = 5
    t, p, w = _data(rng, 120, C, weights)
    t[t == 4] = 3  # class 4 absent from the labels: its row sums to 0 ("true" gives zeros, as sklearn)
    m = ConfusionMatrix(C, normalize=normalize)
    for lo, hi in ((0, 50), (50, 51), (51, 120)):
        m.update_state(backend.to(t[lo:hi]), backend.to(p[lo:hi]), backend.to(None if w is None else w[lo:hi]))
    got = backend.host(m.result())
    want = sklearn_confusion(t, p, C, w, normalize)
    np.testing.assert_allclose(got, want, rtol=1e-6 if normalize else 1e-12)
    assert got.dtype == (np.float64 if normalize is None else np.float32)


def test_per_class_vectors(backend):
    from sklearn.metrics import precision_score, recall_score

    rng = np.random.default_rng(8)
    C = 4
    t, p, w = _data(rng, 90, C, True)
    m = ConfusionMatrix(C)
    m.update_state(backend.to(t), backend.to(p), backend.to(w))
    kw = dict(labels=list(range(C)), average=None, sample_weight=w, zero_division=0)
    np.testing.assert_allclose(backend.host(m.precision()), precision_score(t, p, **kw), rtol=1e-5)
    np.testing.assert_allclose(backend.host(m.recall()), recall_score(t, p, **kw), rtol=1e-5)
    np.testing.assert_allclose(backend.host(m.iou()), sklearn_jaccard(t, p, C, w), rtol=1e-5)


def test_ignore_class_and_one_class(backend):
    t = np.array([0, 0, 9, 9, 0], np.uint8)
    p = np.array([0, 1, 1, 0, 0], np.uint8)
    m = ConfusionMatrix(2, ignore_class=9)
    m.update_state(backend.to(t), backend.to(p))
    np.testing.assert_array_equal(backend.host(m.result()), [[2, 1], [0, 0]])
    np.testing.assert_allclose(backend.host(m.recall()), [2 / 3, 0], rtol=1e-6)


def test_functional_one_shot(backend):
    rng = np.random.default_rng(9)
    t, p, w = _data(rng, 70, 3, True)
    got = backend.host(F.confusion_matrix(backend.to(t), backend.to(p), 3, sample_weight=backend.to(w)))
    np.testing.assert_allclose(got, confusion(t, p, 3, w), rtol=1e-12)
    got = backend.host(F.mean_iou(backend.to(t), backend.to(p), 3))
    assert float(got) == float(iou_from_cm(confusion(t, p, 3), range(3)))
    got = backend.host(F.iou(backend.to(t), backend.to(p), 3, [2]))
    assert float(got) == float(iou_from_cm(confusion(t, p, 3), [2]))


def test_updates_never_read_the_device_on_the_host(backend, monkeypatch):
    if backend.name != "emu":
        pytest.skip("the host-read guard belongs to the emulated device")
    import cuda_emu

    from gpumetrics.metrics.f_score import F1Score

    cuda_emu.guard_metric_updates(monkeypatch)
    rng = np.random.default_rng(10)
    t, p, w = _data(rng, 40, 3, True)
    scores = rng.uniform(size=(40, 3)).astype(np.float32)
    m = MeanIoU(3, sparse_y_pred=False)
    m.update_state(backend.to(t), backend.to(scores), backend.to(w))
    m.update_state(backend.to(t), backend.to(scores), 2.0)
    f = F1Score()
    f.update_state(backend.to(np.eye(3, dtype=np.float32)[t]), backend.to(scores), backend.to(w))
    want = confusion(t, scores.argmax(1), 3, w) + confusion(t, scores.argmax(1), 3, 2.0)
    assert float(backend.host(m.result())) == pytest.approx(float(iou_from_cm(want, range(3))), rel=1e-6)
