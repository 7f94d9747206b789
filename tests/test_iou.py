"""The IoU family against real Keras 3 (torch backend) and scikit-learn, streamed in several batches on every
backend; Keras edge cases from the spec; deliberate deviations; bad input leaves the state unchanged."""
from __future__ import annotations

import numpy as np
import pytest

from gpumetrics.metrics.iou import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from invalid_input import assert_batch_rejected
from reference.confusion import confusion, iou_from_cm, sklearn_jaccard
from reference.keras_ref import keras_result

RTOL, ATOL = 1e-6, 1e-7
# Keras warns that its default int dtype truncates float weights (the deviation tested below)
pytestmark = pytest.mark.filterwarnings("ignore:You are passing weight as:UserWarning")


def _stream(metric, backend, batches):
    for batch in batches:
        metric.update_state(*[backend.to(x) for x in batch])
    return backend.host(metric.result())


def _seg_batches(rng, n, C, dtype=np.int32, ignore=None, weights=None):
    t = rng.integers(0, C, n).astype(dtype)
    p = np.where(rng.uniform(size=n) < 0.6, t, rng.integers(0, C, n)).astype(dtype)
    if ignore is not None:
        t[rng.uniform(size=n) < 0.1] = ignore
    w = None
    if weights == "int":
        w = rng.integers(0, 4, n).astype(np.float32)
    elif weights == "float":
        w = rng.uniform(0, 2, n).astype(np.float32)
    return t, p, w


@pytest.mark.parametrize("n", [1, 31, 32, 33, 63, 64, 65, 127])
@pytest.mark.parametrize("weights", [None, "int"])
def test_mean_iou_matches_keras(backend, n, weights):
    rng = np.random.default_rng(n)
    C = 5
    batches = [_seg_batches(rng, n, C, np.uint8, ignore=255, weights=weights),
               _seg_batches(rng, 17, C, np.uint8, ignore=255)]
    ours = _stream(MeanIoU(C, ignore_class=255), backend, batches)
    want = keras_result("MeanIoU", batches, num_classes=C, ignore_class=255)
    np.testing.assert_allclose(ours, want, rtol=RTOL, atol=ATOL)
    assert ours.dtype == np.float32 and ours.shape == ()


def test_iou_targets_and_duplicates_match_keras(backend):
    rng = np.random.default_rng(3)
    batches = [_seg_batches(rng, 50, 4, np.int64), _seg_batches(rng, 33, 4, np.int64, weights="int")]
    for targets in ([0], [1, 3], [2, 2, 0]):
        ours = _stream(IoU(4, targets), backend, batches)
        np.testing.assert_allclose(ours, keras_result("IoU", batches, num_classes=4, target_class_ids=targets),
                                   rtol=RTOL, atol=ATOL)


def test_fractional_weights_are_honoured(backend):
    """Deviation: Keras' default int dtype truncates a weight of 0.3 to 0; we honour it (= Keras float32)."""
    rng = np.random.default_rng(4)
    batches = [_seg_batches(rng, 40, 3, weights="float"), _seg_batches(rng, 20, 3, weights="float")]
    ours = _stream(MeanIoU(3), backend, batches)
    np.testing.assert_allclose(ours, keras_result("MeanIoU", batches, num_classes=3, dtype="float32"), rtol=1e-5)
    truncated = keras_result("MeanIoU", [(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]),
                                          np.array([0.3, 0.4, 0.3, 0.1], np.float32))], num_classes=2)
    assert float(truncated) == 0.0  # what Keras does by default
    ours = _stream(MeanIoU(2), backend, [(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]),
                                          np.array([0.3, 0.4, 0.3, 0.1], np.float32))])
    cm = confusion([0, 0, 1, 1], [0, 1, 0, 1], 2, [0.3, 0.4, 0.3, 0.1])
    np.testing.assert_allclose(ours, iou_from_cm(cm, [0, 1]), rtol=1e-6)


def test_per_class_iou_matches_sklearn_jaccard(backend):
    rng = np.random.default_rng(12)
    t, p, w = _seg_batches(rng, 500, 6, weights="float")
    m = gm_confusion(6)
    m.update_state(backend.to(t), backend.to(p), backend.to(w))
    np.testing.assert_allclose(backend.host(m.iou()), sklearn_jaccard(t, p, 6, w), rtol=1e-5)


def gm_confusion(C, **kwargs):
    from gpumetrics.metrics.confusion_matrix import ConfusionMatrix

    return ConfusionMatrix(C, **kwargs)


@pytest.mark.parametrize("C", [2, 3])
def test_one_hot_ious_match_keras_with_ties(backend, C):
    rng = np.random.default_rng(C)
    n = 45
    ids = rng.integers(0, C, n)
    y_true = np.eye(C, dtype=np.float32)[ids]
    y_true[0] = 0  # an all-zero row: argmax takes the first index
    scores = (np.round(rng.uniform(size=(n, C)) * 2) / 2).astype(np.float32)  # many ties
    batches = [(y_true, scores), (y_true[:9], scores[:9], rng.integers(0, 3, 9).astype(np.float32))]
    np.testing.assert_allclose(_stream(OneHotMeanIoU(C), backend, batches),
                               keras_result("OneHotMeanIoU", batches, num_classes=C), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(_stream(OneHotIoU(C, [C - 1]), backend, batches),
                               keras_result("OneHotIoU", batches, num_classes=C, target_class_ids=[C - 1]),
                               rtol=RTOL, atol=ATOL)
    sparse_pred = [(y_true, scores.argmax(1).astype(np.int32))]
    np.testing.assert_allclose(_stream(OneHotMeanIoU(C, sparse_y_pred=True), backend, sparse_pred),
                               keras_result("OneHotMeanIoU", sparse_pred, num_classes=C, sparse_y_pred=True),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_binary_iou_matches_keras(backend, threshold):
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 60).astype(np.int32)
    p = (np.round(rng.uniform(size=60) * 10) / 10).astype(np.float32)
    p[:3] = threshold  # >= : a score equal to the threshold is class 1
    batches = [(y, p), (y[:20], p[:20], rng.integers(0, 3, 20).astype(np.float32))]
    for targets in ((0, 1), (1,), (0,)):
        ours = _stream(BinaryIoU(targets, threshold=threshold), backend, batches)
        np.testing.assert_allclose(ours, keras_result("BinaryIoU", batches, target_class_ids=targets,
                                                      threshold=threshold), rtol=RTOL, atol=ATOL)


def test_binary_iou_float64_scores_compare_in_float32(backend):
    p = np.array([0.50000001, 0.49999999, 0.7], np.float64)  # both round to 0.5 in float32: class 1
    ours = _stream(BinaryIoU([1]), backend, [(np.array([1, 1, 0]), p)])
    np.testing.assert_allclose(ours, keras_result("BinaryIoU", [(np.array([1, 1, 0]), p)], target_class_ids=[1]))


@pytest.mark.parametrize("case", [
    ((np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1])),),  # perfect over 2 classes: exactly 1.0
    ((np.array([0, 1]), np.array([0, 1])),),  # one pixel each: 1/(1+EPS) per class
    ((np.array([1, 1]), np.array([1, 1])),),  # one valid class, absent classes excluded
    ((np.array([0, 1, 2]), np.array([0, 1, 2])),),  # three classes of 1/(1+EPS)
    ((np.array([0, 1]), np.array([0, 0]), np.array([1, 0], np.int32)),),  # a zero weight masks a pixel
    ((np.array([2, 2, 2]), np.array([2, 2, 2])), (np.array([0]), np.array([1]))),
])
def test_keras_edge_values_exact(backend, case):
    ours = _stream(MeanIoU(3), backend, case)
    assert ours.tobytes() == keras_result("MeanIoU", case, num_classes=3).astype(np.float32).tobytes()


def test_empty_and_all_ignored(backend):
    assert float(MeanIoU(3).result()) == 0.0  # nothing seen
    all_ignored = _stream(MeanIoU(3, ignore_class=-1), backend, [(np.array([-1, -1]), np.array([0, 1]))])
    assert float(all_ignored) == 0.0
    empty = _stream(MeanIoU(3), backend, [(np.zeros(0, np.int32), np.zeros(0, np.int32))])
    assert float(empty) == 0.0
    assert float(keras_result("MeanIoU", [(np.array([-1, -1]), np.array([0, 1]))], num_classes=3,
                              ignore_class=-1)) == 0.0


def test_float_ids_and_2d_maps_match_keras(backend):
    t = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]], np.float32)
    p = np.array([[0, 2, 2], [2, 1, 1]], np.int16)
    batches = [(t, p)]
    np.testing.assert_allclose(_stream(MeanIoU(3), backend, batches), keras_result("MeanIoU", batches, num_classes=3),
                               rtol=RTOL)


def test_channels_first_axis_deviation(backend):
    """axis=1 with (B, C, H, W) scores: used for the argmax only (Keras' own result() fails there)."""
    rng = np.random.default_rng(21)
    scores = rng.uniform(size=(2, 3, 4, 5)).astype(np.float32)
    labels = rng.integers(0, 3, (2, 4, 5)).astype(np.uint8)
    ours = _stream(MeanIoU(3, sparse_y_pred=False, axis=1), backend, [(labels, scores)])
    keras_same = keras_result("MeanIoU", [(labels, np.moveaxis(scores, 1, -1))], num_classes=3, sparse_y_pred=False)
    np.testing.assert_allclose(ours, keras_same, rtol=RTOL)


def test_float64_dtype(backend):
    rng = np.random.default_rng(5)
    batches = [_seg_batches(rng, 40, 4, weights="float")]
    ours = _stream(MeanIoU(4, dtype="float64"), backend, batches)
    assert ours.dtype == np.float64
    t, p, w = batches[0]
    np.testing.assert_allclose(ours, iou_from_cm(confusion(t, p, 4, w), range(4), np.float64), rtol=1e-12)


def test_config_round_trip_and_keras_names():
    m = MeanIoU(3, ignore_class=255)
    assert m.get_config() == {"name": m.name, "dtype": "int32", "num_classes": 3, "ignore_class": 255,
                              "sparse_y_true": True, "sparse_y_pred": True, "axis": -1}
    assert MeanIoU.from_config(m.get_config()).get_config() == m.get_config()
    b = BinaryIoU()
    assert b.get_config() == {"target_class_ids": [0, 1], "threshold": 0.5, "name": b.name, "dtype": "int32"}
    assert IoU(3, [1], dtype="int").dtype == "int32"
    assert "sparse_y_true" not in OneHotMeanIoU(3).get_config()


@pytest.mark.parametrize("make", [
    lambda: MeanIoU(0),
    lambda: MeanIoU(-3),
    lambda: MeanIoU(2.5),
    lambda: IoU(3, [3]),
    lambda: IoU(3, [-1]),
    lambda: IoU(3, [0, 1], ignore_class=1),
    lambda: IoU(3, []),
    lambda: MeanIoU(3, ignore_class=1.5),
    lambda: MeanIoU(3, dtype="complex64"),
])
def test_bad_arguments(make):
    with pytest.raises(ValueError):
        make()


def test_bad_shapes_raise_at_once_and_keep_state(backend):
    m = MeanIoU(3, sparse_y_pred=False)
    good = (np.array([0, 1, 2]), np.eye(3, dtype=np.float32))
    m.update_state(*[backend.to(x) for x in good])
    before = backend.host(m.result())
    bad = [
        (np.array([0, 1]), np.eye(3, dtype=np.float32), None),  # pixel counts disagree
        (np.array([0, 1, 2]), np.ones((3, 4), np.float32), None),  # class axis != num_classes
        (np.array([0, 1, 2]), np.float32(1.0), None),  # scalar scores
        (np.array([0, 1, 2]), np.eye(3, dtype=np.float32), np.ones(2, np.float32)),  # weights of another length
    ]
    for t, p, w in bad:
        with pytest.raises(ValueError):
            m.update_state(backend.to(t), backend.to(p), backend.to(w))
    with pytest.raises(TypeError):
        m.update_state(backend.to(np.array(["a", "b", "c"])), backend.to(good[1]))
    np.testing.assert_array_equal(backend.host(m.result()), before)


@pytest.mark.parametrize("bad,reason", [
    ((np.array([0, 3]), np.array([0, 1])), "1 y_true class ids are outside"),
    ((np.array([0, 1]), np.array([0, -1])), "1 y_pred class ids are outside"),
    ((np.array([0.5, 1.0], np.float32), np.array([0, 1])), "1 y_true values are not class ids"),
    ((np.array([0, 1]), np.array([0, 1]), np.array([1.0, -2.0])), "1 sample_weight values are negative"),
    ((np.array([0, 1]), np.array([0, 1]), np.array([np.nan, 1.0])), "1 sample_weight"),
])
def test_bad_values_rejected_state_unchanged(backend, bad, reason):
    good = (np.array([0, 1, 2]), np.array([0, 1, 1]))
    assert_batch_rejected(MeanIoU(3), backend, good, bad, reason)


def test_merge_reset_and_pickle(backend):
    import pickle

    rng = np.random.default_rng(30)
    b1, b2 = _seg_batches(rng, 40, 4), _seg_batches(rng, 50, 4, weights="int")
    a, b = MeanIoU(4), MeanIoU(4)
    _stream(a, backend, [b1])
    _stream(b, backend, [b2])
    a.merge_state(b)
    whole = _stream(MeanIoU(4), backend, [b1, b2])
    np.testing.assert_array_equal(backend.host(a.result()), whole)
    if backend.name in ("numpy", "torch"):
        c = pickle.loads(pickle.dumps(a))
        np.testing.assert_array_equal(c.result(), whole)
    a.reset_state()
    assert float(backend.host(a.result())) == 0.0


def test_streaming_memory_is_constant():
    """The state is C x C whatever streams through (a 1e6-pixel update allocates no per-pixel state)."""
    m = MeanIoU(19, ignore_class=255)
    rng = np.random.default_rng(0)
    t = rng.integers(0, 19, 1_000_000).astype(np.uint8)
    for _ in range(3):
        m.update_state(t, t)
    state = m.state_dict()["state"]
    assert {k: v.shape for k, v in state.items()} == {"confusion_counts": (19, 19), "confusion_sums": (19, 19)}
    assert int(state["confusion_counts"].sum()) == 3_000_000
