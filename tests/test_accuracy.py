"""The accuracy family against real Keras 3 and plain numpy, streamed in several batches on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import gpumetrics as gm
from invalid_input import assert_batch_rejected
from reference.keras_ref import keras_result

RTOL, ATOL = 1e-5, 1e-6


def _stream(metric, backend, batches):
    for batch in batches:
        metric.update_state(*[backend.to(x) for x in batch])
    return backend.host(metric.result())


def test_seed_example():
    m = gm.Accuracy()
    m.update_state([1, 2, 3, 4], [0, 2, 3, 4])
    assert float(m.result()) == 0.75
    m.reset_state()
    assert float(m.result()) == 0.0


@pytest.mark.parametrize("n", [1, 31, 32, 33, 65, 251])
def test_accuracy_and_binary_accuracy(backend, n):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 3, size=(n, 2)).astype(np.float32)
    preds = rng.integers(0, 3, size=(n, 2)).astype(np.float32)
    w = rng.uniform(0, 1, size=(n,)).astype(np.float32)
    batches = [(labels, preds, w), (labels[: n // 2 + 1], preds[: n // 2 + 1], None)]
    np.testing.assert_allclose(_stream(gm.Accuracy(), backend, batches), keras_result("Accuracy", batches),
                               rtol=RTOL, atol=ATOL)
    y = rng.integers(0, 2, size=(n, 3)).astype(np.float32)
    p = rng.uniform(size=(n, 3)).astype(np.float32)
    p[0, 0] = 0.5  # strict >: a score equal to the threshold is class 0
    batches = [(y, p, rng.uniform(size=(n, 3)).astype(np.float32)), (y, p, None)]
    for threshold in (0.5, 0.3):
        np.testing.assert_allclose(_stream(gm.BinaryAccuracy(threshold=threshold), backend, batches),
                                   keras_result("BinaryAccuracy", batches, threshold=threshold), rtol=RTOL)


def test_binary_accuracy_soft_labels_never_match(backend):
    ours = _stream(gm.BinaryAccuracy(), backend, [(np.array([0.7, 1.0], np.float32),
                                                   np.array([0.9, 0.9], np.float32))])
    assert float(ours) == 0.5


def _class_batches(rng, n, c, one_hot, rank3=False, ties=False, weights=True):
    shape = (n, 3, c) if rank3 else (n, c)
    scores = rng.uniform(size=shape).astype(np.float32)
    if ties:
        scores = np.round(scores * 3) / 3  # many exact ties
    ids = rng.integers(0, c, size=shape[:-1])
    y_true = np.eye(c, dtype=np.float32)[ids] if one_hot else ids.astype(np.int32)
    w = rng.uniform(size=(n,)).astype(np.float32) if weights else None
    return y_true, scores, w


@pytest.mark.parametrize("cls,one_hot,kwargs", [
    ("CategoricalAccuracy", True, {}),
    ("SparseCategoricalAccuracy", False, {}),
    ("TopKCategoricalAccuracy", True, {"k": 2}),
    ("SparseTopKCategoricalAccuracy", False, {"k": 3}),
])
@pytest.mark.parametrize("n", [1, 33, 64, 65, 131])
@pytest.mark.parametrize("ties", [False, True])
def test_class_accuracies_match_keras(backend, cls, one_hot, kwargs, n, ties):
    rng = np.random.default_rng(n + ties)
    batches = [_class_batches(rng, n, 5, one_hot, ties=ties), _class_batches(rng, 7, 5, one_hot, ties=ties,
                                                                            weights=False)]
    ours = _stream(getattr(gm, cls)(**kwargs), backend, batches)
    np.testing.assert_allclose(ours, keras_result(cls, batches, **kwargs), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("cls,one_hot,kwargs", [
    ("CategoricalAccuracy", True, {}),
    ("SparseCategoricalAccuracy", False, {}),
    ("TopKCategoricalAccuracy", True, {"k": 2}),
])
def test_class_accuracies_rank3(backend, cls, one_hot, kwargs):
    rng = np.random.default_rng(7)
    batches = [_class_batches(rng, 6, 4, one_hot, rank3=True), _class_batches(rng, 3, 4, one_hot, rank3=True)]
    ours = _stream(getattr(gm, cls)(**kwargs), backend, batches)
    np.testing.assert_allclose(ours, keras_result(cls, batches, **kwargs), rtol=RTOL, atol=ATOL)


def test_sparse_labels_with_trailing_axis_and_channels_last(backend):
    rng = np.random.default_rng(8)
    # (4, 6, 10) scores whose class axis is not the fastest in memory (class stride 6), read zero-copy
    scores = rng.uniform(size=(4, 10, 6)).astype(np.float32).transpose(0, 2, 1)
    ids = rng.integers(0, 10, size=(4, 6, 1)).astype(np.int64)
    batches = [(ids, scores, None)]
    ours = _stream(gm.SparseCategoricalAccuracy(), backend, batches)
    expected = np.mean(np.argmax(scores, -1) == ids[..., 0])
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_in_top_k_ties_all_count(backend):
    # spec 2.3: [0.5, 0.5, 0.1] with k=1: both tied classes are hits.
    y = np.array([0, 1], np.int32)
    p = np.array([[0.5, 0.5, 0.1], [0.5, 0.5, 0.1]], np.float32)
    assert float(_stream(gm.SparseTopKCategoricalAccuracy(k=1), backend, [(y, p)])) == 1.0
    assert float(_stream(gm.CategoricalAccuracy(), backend, [(np.eye(3, dtype=np.float32)[y], p)])) == 0.5


def test_k_equal_to_classes_is_all_hits_and_larger_is_an_error(backend):
    y = np.array([2], np.int32)
    p = np.array([[0.1, 0.2, 0.3]], np.float32)
    assert float(_stream(gm.SparseTopKCategoricalAccuracy(k=3), backend, [(y, p)])) == 1.0
    m = gm.SparseTopKCategoricalAccuracy(k=5)
    with pytest.raises(ValueError, match="k=5 is larger"):
        m.update_state(backend.to(y), backend.to(p))


def test_sorted_ids(backend):
    y = np.array([3, 1, 0], np.int32)
    ids = np.array([[3, 2, 1], [0, 2, 1], [2, 0, 1]], np.int32)
    batches = [(y, ids)]
    ours = _stream(gm.SparseTopKCategoricalAccuracy(k=2, from_sorted_ids=True), backend, batches)
    np.testing.assert_allclose(ours, keras_result("SparseTopKCategoricalAccuracy", batches, k=2,
                                                  from_sorted_ids=True))


def test_bad_class_ids_are_rejected_and_state_kept(backend):
    good = (np.array([0, 1], np.int32), np.array([[0.9, 0.1], [0.2, 0.8]], np.float32))
    bad = (np.array([0.5, 7.0], np.float32), good[1])  # fractional, and outside [0, 2)
    assert_batch_rejected(gm.SparseCategoricalAccuracy(), backend, good, bad, "2 y_true class ids")
