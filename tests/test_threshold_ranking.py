"""Exact ranking metrics against scikit-learn; binned AUC against scikit-learn on bucket edges; the curve
points and the one-shot functions."""
from __future__ import annotations

import numpy as np
import pytest

from gpumetrics.functional import ranking, threshold as F
from gpumetrics.metrics import threshold as T
from reference.threshold import sklearn_average_precision, sklearn_roc_auc


def _ties(n, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(np.float32)
    p = np.round(rng.random(n) * 20).astype(np.float32) / 20  # many ties
    w = rng.choice(np.array([0.0, 0.5, 1.0, 3.0]), n)
    return y, p, w


@pytest.mark.parametrize("n", [2, 33, 65, 500])
def test_exact_roc_auc_and_ap_match_sklearn(backend, n):
    y, p, w = _ties(n, n)
    y[0], y[1] = 0, 1  # both classes present
    for weights in (None, w):
        if weights is not None:
            weights = weights.copy()
            weights[:2] = 1.0
        got = backend.host(F.roc_auc(backend.to(y), backend.to(p), sample_weight=backend.to(weights), exact=True))
        np.testing.assert_allclose(got, sklearn_roc_auc(y, p, weights), rtol=1e-12)
        got = backend.host(F.pr_auc(backend.to(y), backend.to(p), sample_weight=backend.to(weights), exact=True))
        np.testing.assert_allclose(got, sklearn_average_precision(y, p, weights), rtol=1e-12)


def test_exact_mode_input_errors(backend):
    y = np.array([0, 1, 2], np.float32)
    p = np.array([0.1, 0.2, 0.3], np.float32)
    with pytest.raises(ValueError, match="binary labels"):
        F.roc_auc(backend.to(y), backend.to(p), exact=True)
    with pytest.raises(ValueError, match="NaN"):
        F.roc_auc(backend.to(np.array([0, 1], np.float32)), backend.to(np.array([np.nan, 0.2], np.float32)),
                  exact=True)
    with pytest.raises(ValueError, match="one class"):
        F.roc_auc(backend.to(np.ones(3, np.float32)), backend.to(p), exact=True)
    with pytest.raises(ValueError, match="negative"):
        ranking.exact_average_precision(backend.to(np.array([0, 1], np.float32)),
                                        backend.to(np.array([0.3, 0.2], np.float32)),
                                        sample_weight=backend.to(np.array([1.0, -1.0])))


def test_binned_auc_equals_sklearn_on_bucket_edges(backend):
    """Scores on the grid k/256 with T = 257: every distinct score has its own bucket, so Keras' binned ROC AUC
    is the exact one."""
    rng = np.random.default_rng(1)
    k = rng.integers(1, 257, 600)
    p = (k / 256).astype(np.float32)
    y = (rng.random(600) < 0.3 + 0.4 * (k / 256)).astype(np.float32)
    w = rng.choice(np.array([0.0, 1.0, 2.0]), 600)
    for weights in (None, w):
        got = backend.host(F.roc_auc(backend.to(y), backend.to(p), sample_weight=backend.to(weights),
                                     num_thresholds=257))
        np.testing.assert_allclose(got, sklearn_roc_auc(y, p, weights), rtol=2e-6)


def test_curve_points(backend):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300).astype(np.float32)
    p = rng.random(300).astype(np.float32)
    m = T.AUC(num_thresholds=20)
    m.update_state(backend.to(y), backend.to(p))
    fpr, tpr, thresholds = (backend.host(a) for a in m.curve_points())
    assert fpr.shape == tpr.shape == thresholds.shape == (20,)
    t = np.asarray(thresholds, np.float32)
    inner = (np.arange(20) > 0) & (np.arange(20) < 19)
    above = np.clip(p, 0, 1)[:, None] > t[None, :]  # away from ulp edges the bucket rule is the plain test
    ref_tpr = (above & (y[:, None] == 1)).sum(0) / (y == 1).sum()
    ref_fpr = (above & (y[:, None] == 0)).sum(0) / (y == 0).sum()
    np.testing.assert_allclose(tpr[inner], ref_tpr[inner], atol=1e-6)
    np.testing.assert_allclose(fpr[inner], ref_fpr[inner], atol=1e-6)
    assert tpr[0] == 1.0 and fpr[0] == 1.0 and tpr[-1] == 0.0 and fpr[-1] == 0.0
    r, prec, _ = (backend.host(a) for a in F.precision_recall_curve(backend.to(y), backend.to(p), num_thresholds=20))
    np.testing.assert_allclose(r, tpr, atol=1e-7)
    assert prec.shape == (20,)
    trapezoid = np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2)
    np.testing.assert_allclose(backend.host(m.result()), trapezoid, rtol=1e-5)


def test_multilabel_curve_shape():
    x, y, t = T.AUC(multi_label=True, num_thresholds=10).curve_points()  # labels not known yet
    assert x.shape == (10,) and t.shape == (10,)
    m = T.AUC(multi_label=True, num_labels=3, num_thresholds=10)
    assert m.curve_points()[0].shape == (3, 10)
    m.update_state(np.eye(3, dtype=np.float32)[[0, 1, 2, 1]], np.random.default_rng(0).random((4, 3)))
    x, y, t = m.curve_points()
    assert x.shape == (3, 10) and y.shape == (3, 10)


def test_one_shot_functions_match_the_class(backend):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200).astype(np.float32)
    p = rng.random(200).astype(np.float32)
    m = T.AUC(curve="PR", summation_method="minoring")
    m.update_state(y, p)
    got = F.auc(backend.to(y), backend.to(p), curve="PR", summation_method="minoring")
    np.testing.assert_allclose(backend.host(got), np.asarray(m.result()), rtol=1e-6)
    fpr, tpr, _ = F.roc_curve(backend.to(y), backend.to(p), thresholds=[0.2, 0.5, 0.8])
    assert backend.host(fpr).shape == (5,)
