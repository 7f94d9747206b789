"""FBetaScore and F1Score against real Keras 3 and scikit-learn, streamed in batches on every backend."""
from __future__ import annotations

import numpy as np
import pytest

from gpumetrics.functional import f_score as ff
from gpumetrics.metrics.f_score import F1Score, FBetaScore
from invalid_input import assert_batch_rejected
from reference.confusion import fbeta_from_sums, fbeta_sums
from reference.keras_ref import keras_result

RTOL, ATOL = 1e-5, 1e-6
AVERAGES = [None, "micro", "macro", "weighted"]


def _stream(metric, backend, batches):
    for batch in batches:
        metric.update_state(*[backend.to(x) for x in batch])
    return backend.host(metric.result())


def _batch(rng, n, C, weights=False, ties=False, soft=False):
    scores = rng.uniform(size=(n, C)).astype(np.float32)
    if ties:
        scores = (np.round(scores * 2) / 2).astype(np.float32)
        scores[0] = 0  # an all-zero row predicts nothing
    ids = rng.integers(0, C, n)
    y = np.eye(C, dtype=np.float32)[ids]
    if soft:
        y = (y * rng.uniform(0.5, 2, size=(n, 1))).astype(np.float32)
    w = rng.uniform(0, 2, n).astype(np.float32) if weights else None
    return y, scores, w


@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("n", [1, 32, 33, 65, 97])
def test_f1_matches_keras(backend, average, n):
    rng = np.random.default_rng(n)
    batches = [_batch(rng, n, 4, weights=True, ties=True), _batch(rng, 9, 4)]
    ours = _stream(F1Score(average=average), backend, batches)
    np.testing.assert_allclose(ours, keras_result("F1Score", batches, average=average), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize("beta,threshold", [(2.0, 0.5), (0.5, None), (1.5, 0.3)])
def test_fbeta_matches_keras(backend, average, beta, threshold):
    rng = np.random.default_rng(int(beta * 10))
    batches = [_batch(rng, 40, 5, weights=True, soft=True), _batch(rng, 21, 5, ties=True)]
    batches[0][1][:3, 0] = np.float32(threshold or 0.5)  # strict >: a score equal to the threshold is negative
    kwargs = dict(average=average, beta=beta, threshold=threshold)
    np.testing.assert_allclose(_stream(FBetaScore(**kwargs), backend, batches),
                               keras_result("FBetaScore", batches, **kwargs), rtol=RTOL, atol=ATOL)


def test_keras_edge_values(backend):
    # perfect score is 0.99999982 because of the epsilons; absent classes score 0 and count in the macro mean
    y = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    for average in AVERAGES:
        ours = _stream(F1Score(average=average), backend, [(y, y)])
        np.testing.assert_allclose(ours, keras_result("F1Score", [(y, y)], average=average), rtol=1e-7)
    # a label of 2 multiplies (F1 may exceed 1); negative maxima still count
    y2 = np.array([[2, 0], [0, 1]], np.float32)
    p2 = np.array([[-0.1, -0.5], [0.3, 0.9]], np.float32)
    np.testing.assert_allclose(_stream(F1Score(), backend, [(y2, p2)]), keras_result("F1Score", [(y2, p2)]),
                               rtol=1e-6)


def test_against_sklearn(backend):
    from sklearn.metrics import f1_score, fbeta_score

    rng = np.random.default_rng(5)
    n, C = 200, 4
    t = rng.integers(0, C, n)
    scores = rng.uniform(size=(n, C)).astype(np.float32)
    p = scores.argmax(1)
    y = np.eye(C, dtype=np.float32)[t]
    for average in (None, "macro", "weighted", "micro"):
        ours = _stream(F1Score(average=average), backend, [(y[:50], scores[:50]), (y[50:], scores[50:])])
        np.testing.assert_allclose(ours, f1_score(t, p, average=average, labels=range(C)), rtol=1e-5, atol=1e-6)
        ours = _stream(FBetaScore(average=average, beta=2.0), backend, [(y, scores)])
        np.testing.assert_allclose(ours, fbeta_score(t, p, beta=2.0, average=average, labels=range(C)),
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtypes", [("u1", "f2"), ("i8", "f8"), ("b1", "f4"), ("i4", "i4")])
def test_input_dtypes(backend, dtypes):
    rng = np.random.default_rng(1)
    y, s, w = _batch(rng, 33, 3, weights=True)
    yt = y.astype(bool if dtypes[0] == "b1" else np.dtype(dtypes[0]))
    sp = (s * 4).round().astype(np.dtype(dtypes[1])) if dtypes[1] == "i4" else s.astype(np.dtype(dtypes[1]))
    ours = _stream(F1Score(average="macro"), backend, [(yt, sp, w)])
    want = fbeta_from_sums(*fbeta_sums(yt.astype(np.float32), sp.astype(np.float32), w), average="macro")
    np.testing.assert_allclose(ours, want, rtol=1e-6)


def test_strided_inputs(backend):
    rng = np.random.default_rng(2)
    y, s, _ = _batch(rng, 20, 6)
    ys, ss = y[::2, ::2], s[::2, ::2]
    if backend.name != "numpy":
        ys, ss = np.ascontiguousarray(ys), np.ascontiguousarray(ss)
    ours = _stream(F1Score(threshold=0.5), backend, [(ys, ss)])
    np.testing.assert_allclose(ours, fbeta_from_sums(*fbeta_sums(y[::2, ::2], s[::2, ::2], threshold=0.5)), rtol=1e-6)
    ours = _stream(F1Score(), backend, [(y.T.copy().T, s.T.copy().T)])  # column-major
    np.testing.assert_allclose(ours, fbeta_from_sums(*fbeta_sums(y, s)), rtol=1e-6)


def test_many_classes_global_path(backend, monkeypatch):
    rng = np.random.default_rng(3)
    if backend.name == "emu":
        from gpumetrics._cuda import class_sums

        monkeypatch.setattr(class_sums, "SHARED_BYTES", 64)  # 4*C doubles no longer fit: global atomics
    y, s, w = _batch(rng, 70, 9, weights=True)
    ours = _stream(F1Score(), backend, [(y, s, w)])
    np.testing.assert_allclose(ours, fbeta_from_sums(*fbeta_sums(y, s, w)), rtol=1e-6)


def test_float64_dtype(backend):
    rng = np.random.default_rng(4)
    y, s, w = _batch(rng, 30, 3, weights=True, soft=True)
    ours = _stream(F1Score(average="macro", dtype="float64"), backend, [(y, s, w)])
    assert ours.dtype == np.float64
    sums = fbeta_sums(y, s, w)
    np.testing.assert_allclose(ours, fbeta_from_sums(*sums, average="macro", dtype=np.float64), rtol=1e-12)


def test_result_before_update_and_config():
    assert float(F1Score(average="macro").result()) == 0.0
    assert F1Score().result().shape == (0,)
    f = F1Score(average="micro", threshold=0.4)
    assert f.get_config() == {"name": "f1_score", "dtype": "float32", "average": "micro", "threshold": 0.4}
    assert FBetaScore(beta=2.0).get_config()["beta"] == 2.0
    assert F1Score.from_config(f.get_config()).get_config() == f.get_config()


@pytest.mark.parametrize("kwargs", [dict(beta=1), dict(beta=-1.0), dict(threshold=1), dict(threshold=1.5),
                                    dict(threshold=0.0), dict(average="samples")])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        FBetaScore(**kwargs)


def test_bad_shapes_keep_state(backend):
    m = F1Score()
    y = np.eye(3, dtype=np.float32)
    m.update_state(backend.to(y), backend.to(y))
    before = backend.host(m.result())
    for t, p, w in [(y[0], y[0], None), (y, y[:, :2], None), (y[:, :2], y[:, :2], None),
                    (y, y, np.ones((3, 1), np.float32))]:
        with pytest.raises(ValueError):
            m.update_state(backend.to(t), backend.to(p), backend.to(w))
    np.testing.assert_array_equal(backend.host(m.result()), before)


@pytest.mark.parametrize("bad,reason", [
    ((np.array([[1, np.nan]], np.float32), np.array([[0.1, 0.2]], np.float32)), "1 y_true values are NaN"),
    ((np.array([[1, 0]], np.float32), np.array([[np.nan, 0.2]], np.float32)), "1 y_pred values are NaN"),
    ((np.array([[1, 0]], np.float32), np.array([[0.3, 0.2]], np.float32), np.array([np.inf])), "1 sample_weight"),
])
def test_bad_values_rejected_state_unchanged(backend, bad, reason):
    good = (np.array([[1, 0], [0, 1]], np.float32), np.array([[0.9, 0.1], [0.6, 0.4]], np.float32))
    assert_batch_rejected(F1Score(average="macro"), backend, good, bad, reason)


def test_functional_matches_class(backend):
    rng = np.random.default_rng(6)
    y, s, w = _batch(rng, 25, 3, weights=True)
    np.testing.assert_allclose(backend.host(ff.fbeta_score(backend.to(y), backend.to(s), beta=2.0,
                                                           average="weighted", sample_weight=backend.to(w))),
                               _stream(FBetaScore(average="weighted", beta=2.0), backend, [(y, s, w)]), rtol=1e-7)
