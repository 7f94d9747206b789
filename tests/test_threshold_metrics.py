"""Thresholded binary metrics against real Keras 3, streamed in batches, on every backend."""
from __future__ import annotations

import functools
import zlib
import pickle

import numpy as np
import pytest

from gpumetrics import InvalidInputError
from gpumetrics.metrics import threshold as T
from reference.threshold import bucket_edge_scores, keras_stream, spec_counts

RTOL, ATOL = 1e-5, 1e-6


def _data(seed, sizes, cols=None, edges=200, weights=False, label_values=(0, 1), logits=False):
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        shape = (n,) if cols is None else (n, cols)
        size = int(np.prod(shape))
        p = bucket_edge_scores(edges, rng, size).reshape(shape) if edges else rng.random(shape).astype(np.float32)
        if logits:
            p = (rng.standard_normal(shape) * 3).astype(np.float32)
        p = np.where(np.isinf(p), np.float32(0.5), p) if cols is not None else p
        y = rng.choice(np.asarray(label_values, np.float32), size=shape).astype(np.float32)
        w = None
        if weights:
            w = rng.choice(np.array([0.0, 0.5, 1.0, 2.0], np.float32), size=(n,))
        out.append((y, p, w))
    return out


SIZES = (33, 0, 64, 65, 1, 97)

# (id, class, kwargs, data kwargs)
CASES = [
    ("tp_default", "TruePositives", {}, {}),
    ("fp_list_unsorted", "FalsePositives", {"thresholds": [0.85, 0.15, 0.5]}, {}),
    ("tn_even_list", "TrueNegatives", {"thresholds": [0.0, 0.5, 1.0]}, {"weights": True}),
    ("fn_list", "FalseNegatives", {"thresholds": [0.1, 0.2, 0.9]}, {"label_values": (0, 1, 2, -1)}),
    ("precision_default", "Precision", {}, {"weights": True}),
    ("precision_list", "Precision", {"thresholds": [0.2, 0.7]}, {}),
    ("precision_topk2", "Precision", {"top_k": 2}, {"cols": 5, "edges": 0}),
    ("precision_class_id", "Precision", {"class_id": 1}, {"cols": 3, "weights": True}),
    ("precision_topk_class_id", "Precision", {"top_k": 2, "class_id": 1}, {"cols": 4, "edges": 0}),
    ("recall_topk1", "Recall", {"top_k": 1}, {"cols": 3, "edges": 0, "weights": True}),
    ("recall_class_id_list", "Recall", {"class_id": 2, "thresholds": [0.3, 0.6]}, {"cols": 3}),
    ("recall_even_list", "Recall", {"thresholds": [0.0, 0.25, 0.5, 0.75, 1.0]}, {}),
    ("auc_roc", "AUC", {}, {}),
    ("auc_roc_weighted", "AUC", {}, {"weights": True}),
    ("auc_pr", "AUC", {"curve": "PR"}, {}),
    ("auc_pr_minoring", "AUC", {"curve": "PR", "summation_method": "minoring"}, {"weights": True}),
    ("auc_roc_majoring", "AUC", {"summation_method": "majoring"}, {}),
    ("auc_prgain", "AUC", {"curve": "PRGAIN"}, {}),
    ("auc_t3", "AUC", {"num_thresholds": 3}, {"edges": 3}),
    ("auc_t11", "AUC", {"num_thresholds": 11}, {"edges": 11}),
    ("auc_user_uneven", "AUC", {"thresholds": [0.3, 0.1, 0.77]}, {}),
    ("auc_user_even", "AUC", {"thresholds": [0.25, 0.5, 0.75]}, {"edges": 5}),
    ("auc_2d_flattened", "AUC", {}, {"cols": 3}),
    ("auc_label_weights", "AUC", {"label_weights": [0.5, 1.0, 2.0]}, {"cols": 3}),
    ("auc_multilabel", "AUC", {"multi_label": True}, {"cols": 3}),
    ("auc_multilabel_lw", "AUC", {"multi_label": True, "num_labels": 3, "label_weights": [0.2, 0.3, 0.5]},
     {"cols": 3, "weights": True}),
    ("auc_multilabel_pr", "AUC", {"multi_label": True, "curve": "PR"}, {"cols": 4}),
    ("auc_from_logits", "AUC", {"from_logits": True}, {"logits": True, "edges": 0}),
    ("sens_at_spec", "SensitivityAtSpecificity", {"specificity": 0.5}, {}),
    ("spec_at_sens_t1", "SpecificityAtSensitivity", {"sensitivity": 0.7, "num_thresholds": 1}, {}),
    ("prec_at_recall_class", "PrecisionAtRecall", {"recall": 0.3, "class_id": 1}, {"cols": 3}),
    ("recall_at_prec", "RecallAtPrecision", {"precision": 0.6, "num_thresholds": 50}, {"weights": True}),
]


@functools.lru_cache(maxsize=None)
def _keras_expected(case_id):
    _, cls, kwargs, dkw = next(c for c in CASES if c[0] == case_id)
    batches = _data(zlib.crc32(case_id.encode()) % 1000, SIZES, **dkw)
    return keras_stream(cls, [b for b in batches if b[0].size], **kwargs)


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_stream_matches_keras(backend, case_id):
    _, cls, kwargs, dkw = next(c for c in CASES if c[0] == case_id)
    batches = _data(zlib.crc32(case_id.encode()) % 1000, SIZES, **dkw)
    metric = getattr(T, cls)(**kwargs)
    for y, p, w in batches:
        metric.update_state(backend.to(y), backend.to(p), backend.to(w))
    got = backend.host(metric.result())
    expected = _keras_expected(case_id)
    assert got.shape == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_counts_are_exact_against_spec(backend):
    """Bucket edges: scores on and one ulp beside every float32 threshold k/199, 0, 1, out of range."""
    rng = np.random.default_rng(7)
    p = bucket_edge_scores(200, rng, 257)
    y = rng.integers(0, 2, p.size).astype(np.uint8)
    m = T.AUC()
    m.update_state(backend.to(y), backend.to(p))
    tp, fp, tn, fn = spec_counts(y, p, m.thresholds, even=True, epsilon=True)
    state, xp = m._state()
    got = [backend.host(a)[0] for a in m._counts(state, xp)]
    for g, e in zip(got, (tp, fp, tn, fn)):
        np.testing.assert_array_equal(g, e.astype(np.float32))


def test_golden_bucket_examples(backend):
    """p = fl32(31/199) is above threshold 31; nextafter(fl32(37/199), inf) is not above threshold 37."""
    p31 = np.float32(31 / 199)
    p37 = np.nextafter(np.float32(37 / 199), np.float32(np.inf))
    m = T.AUC()
    m.update_state(backend.to(np.array([1, 1], np.float32)), backend.to(np.array([p31, p37], np.float32)))
    state, xp = m._state()
    tp = backend.host(m._counts(state, xp)[0])[0]
    assert tp[31] == 2 and tp[32] == 1  # p31 counts at 31
    assert tp[37] == 0 and tp[36] == 1  # p37 stops before 37
    expected = keras_stream("AUC", [(np.array([1, 1], np.float32), np.array([p31, p37], np.float32), None)])
    np.testing.assert_allclose(backend.host(m.result()), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("cls,kwargs,y,p,expected", [
    ("TruePositives", {}, [1, 1, 1, 1], [0.5, 0.5, 0.0, 0.50001], 1.0),           # strict >
    ("Precision", {"top_k": 2}, [0, 0, 1, 1], [1, 1, 1, 1], 0.0),                 # ties keep lowest index
    ("Recall", {"top_k": 1}, [[0, 1, 0]], [[0.5, 0.5, 0.1]], 0.0),
    ("Precision", {}, [1, 0], [0.1, 0.2], 0.0),                                   # no predicted positives
    ("Recall", {}, [0, 0], [0.7, 0.2], 0.0),                                      # no actual positives
    ("AUC", {}, [1, 1, 1], [0.2, 0.5, 0.9], 0.0),                                 # one class, ROC
    ("AUC", {}, [0, 0, 0], [0.2, 0.5, 0.9], 0.0),
    ("AUC", {"curve": "PR"}, [0, 0, 0], [0.2, 0.5, 0.9], 0.0),
    ("AUC", {"curve": "PR"}, [1, 1, 1], [0.2, 0.5, 0.9], 1.0),
    ("AUC", {}, [0, 1, 0, 1], [0.4, 0.4, 0.4, 0.4], 0.5),                         # all tied
    ("AUC", {"curve": "PR"}, [0, 1, 0, 1], [0.4, 0.4, 0.4, 0.4], 0.5),
    ("SensitivityAtSpecificity", {"specificity": 0.5}, [1, 0], [0.0, 0.0], 0.0),  # p = 0 never positive
    ("RecallAtPrecision", {"precision": 1.0}, [1, 0], [0.3, 0.8], 0.0),           # unreachable
])
def test_spec_edge_cases(backend, cls, kwargs, y, p, expected):
    m = getattr(T, cls)(**kwargs)
    m.update_state(backend.to(np.asarray(y, np.float32)), backend.to(np.asarray(p, np.float32)))
    np.testing.assert_allclose(backend.host(m.result()), expected, atol=1e-6)


@pytest.mark.parametrize("cls,kwargs", [
    ("AUC", {}), ("AUC", {"curve": "PR"}), ("TruePositives", {}), ("Precision", {"thresholds": [0.1, 0.9]}),
    ("SensitivityAtSpecificity", {"specificity": 0.5}), ("AUC", {"multi_label": True}),
])
def test_no_update_gives_keras_empty_value(cls, kwargs):
    m = getattr(T, cls)(**kwargs)
    # Keras' multi-label AUC without num_labels fails before its first batch (no variables); we give 0.0.
    k = 0.0 if kwargs.get("multi_label") else keras_stream(cls, [], **kwargs)
    np.testing.assert_allclose(np.asarray(m.result()), k)
    assert isinstance(m.result(), np.ndarray)


def test_out_of_range_even_vs_uneven(backend):
    """Evenly spaced lists clip predictions to [0, 1]; other lists compare strictly without clipping."""
    y = np.array([1, 0, 1, 0], np.float32)
    p = np.array([-0.5, 1.5, 2.0, -1.0], np.float32)
    for kwargs in ({"thresholds": [0.0, 0.5, 1.0]}, {"thresholds": [0.0, 0.4, 1.0]}):
        for cls in ("FalseNegatives", "FalsePositives"):
            m = getattr(T, cls)(**kwargs)
            m.update_state(backend.to(y), backend.to(p))
            np.testing.assert_allclose(backend.host(m.result()), keras_stream(cls, [(y, p, None)], **kwargs))
    m = T.AUC(thresholds=[0.3, 0.1, 0.77])
    m.update_state(backend.to(y), backend.to(p))
    np.testing.assert_allclose(backend.host(m.result()),
                               keras_stream("AUC", [(y, p, None)], thresholds=[0.3, 0.1, 0.77]), atol=ATOL)


def test_multilabel_constant_label_averaged_in(backend):
    y = np.array([[1, 0], [1, 1], [1, 0], [1, 1]], np.float32)
    p = np.array([[0.2, 0.3], [0.6, 0.9], [0.4, 0.1], [0.8, 0.7]], np.float32)
    m = T.AUC(multi_label=True)
    m.update_state(backend.to(y), backend.to(p))
    np.testing.assert_allclose(backend.host(m.result()), keras_stream("AUC", [(y, p, None)], multi_label=True),
                               atol=ATOL)


# ------------------------------------------------------------------------------------------ dtypes, layouts


@pytest.mark.parametrize("score_dtype", ["float16", "float32", "float64", "int32"])
@pytest.mark.parametrize("label_dtype", ["bool", "uint8", "int8", "int64", "float32", "float64"])
def test_dtypes(backend, score_dtype, label_dtype):
    rng = np.random.default_rng(3)
    p = rng.random(65)
    p = (p > 0.5).astype(score_dtype) if score_dtype == "int32" else p.astype(score_dtype)
    y = (rng.random(65) > 0.5).astype(label_dtype)
    m = T.AUC(num_thresholds=50)
    m.update_state(backend.to(y), backend.to(p))
    expected = keras_stream("AUC", [(y.astype(np.float32), p.astype(np.float32), None)], num_thresholds=50)
    np.testing.assert_allclose(backend.host(m.result()), expected, rtol=RTOL, atol=ATOL)


def test_bfloat16_scores():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    p = torch.from_numpy(rng.random(100).astype(np.float32)).to(torch.bfloat16)
    y = rng.integers(0, 2, 100).astype(np.float32)
    m = T.AUC()
    m.update_state(y, p)
    expected = keras_stream("AUC", [(y, p.float().numpy(), None)])
    np.testing.assert_allclose(np.asarray(m.result()), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("weight_dtype", ["float32", "float64", "int32", "bool"])
def test_weight_dtypes_and_shapes(backend, weight_dtype):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, (40, 3)).astype(np.float32)
    p = rng.random((40, 3)).astype(np.float32)
    for w in (rng.integers(0, 3, 40).astype(weight_dtype), rng.integers(0, 3, (40, 3)).astype(weight_dtype),
              np.asarray(2, weight_dtype)):
        for cls, kwargs in (("AUC", {}), ("Precision", {"thresholds": [0.3, 0.5]})):
            m = getattr(T, cls)(**kwargs)
            m.update_state(backend.to(y), backend.to(p), backend.to(w) if w.ndim else w)
            expected = keras_stream(cls, [(y, p, w.astype(np.float32))], **kwargs)
            np.testing.assert_allclose(backend.host(m.result()), expected, rtol=RTOL, atol=ATOL)


def test_noncontiguous_and_channels_last(backend):
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, (8, 5, 6)).astype(np.float32)
    p = rng.random((8, 5, 6)).astype(np.float32)
    y_nhwc = np.ascontiguousarray(y.transpose(0, 2, 1)).transpose(0, 2, 1)  # channels-last storage
    p_nhwc = np.ascontiguousarray(p.transpose(0, 2, 1)).transpose(0, 2, 1)
    for yy, pp in ((y_nhwc, p_nhwc), (y[:, ::2], p[:, ::2]), (y[::-1], p[::-1])):
        for cls, kwargs in (("AUC", {}), ("Precision", {"top_k": 2}), ("Recall", {"class_id": 1}),
                            ("TruePositives", {"thresholds": [0.2, 0.6]})):
            m = getattr(T, cls)(**kwargs)
            yd, pd = backend.to(yy), backend.to(pp)
            if backend.name == "emu":  # device views with the same strides
                import cuda_emu

                yd = cuda_emu.EmuDeviceArray(y_nhwc if yy is y_nhwc else yy)
                pd = cuda_emu.EmuDeviceArray(p_nhwc if pp is p_nhwc else pp)
            m.update_state(yd, pd)
            expected = keras_stream(cls, [(np.ascontiguousarray(yy), np.ascontiguousarray(pp), None)], **kwargs)
            np.testing.assert_allclose(backend.host(m.result()), expected, rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------------------------------ bad input


def _check_rejected(backend, metric, y, p, w=None, before=None):
    state_before = metric.state_dict()["state"]
    if backend.is_cuda:
        metric.update_state(backend.to(y), backend.to(p), backend.to(w))
        with pytest.raises(InvalidInputError):
            metric.result()
        metric.reset_state()
    else:
        with pytest.raises(InvalidInputError):
            metric.update_state(backend.to(y), backend.to(p), backend.to(w))
        after = metric.state_dict()["state"]
        for k in state_before:
            np.testing.assert_array_equal(after[k], state_before[k])
        if before is not None:
            np.testing.assert_allclose(np.asarray(metric.result()), before)


@pytest.mark.parametrize("cls,kwargs", [("AUC", {}), ("Precision", {}), ("TruePositives", {"thresholds": [0.2, 0.4]}),
                                        ("AUC", {"thresholds": [0.2, 0.3]}), ("SensitivityAtSpecificity", {"specificity": 0.4})])
def test_bad_values_leave_state_unchanged(backend, cls, kwargs):
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 50).astype(np.float32)
    p = rng.random(50).astype(np.float32)
    m = getattr(T, cls)(**kwargs)
    m.update_state(backend.to(y), backend.to(p))
    before = backend.host(m.result())
    p_nan = p.copy()
    p_nan[[3, 7]] = np.nan
    _check_rejected(backend, m, y, p_nan, before=before)
    if not backend.is_cuda:
        m.update_state(backend.to(y), backend.to(p))
    y_nan = y.copy()
    y_nan[5] = np.nan
    _check_rejected(backend, m, y_nan, p)
    w = np.ones(50, np.float32)
    w[9] = -1
    _check_rejected(backend, m, y, p, w)


def test_error_message_names_reason():
    m = T.AUC()
    with pytest.raises(InvalidInputError, match="2 y_pred values are NaN"):
        m.update_state(np.array([1, 0, 1.0]), np.array([np.nan, 0.2, np.nan]))


def test_argument_errors_raise_at_once(backend):
    y = backend.to(np.zeros((4, 3), np.float32))
    p = backend.to(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="top_k"):
        T.Precision(top_k=4).update_state(y, p)
    with pytest.raises(ValueError, match="class_id"):
        T.Recall(class_id=3).update_state(y, p)
    with pytest.raises(ValueError, match="class_id"):
        T.Recall(class_id=0).update_state(backend.to(np.zeros(3, np.float32)), backend.to(np.ones(3, np.float32)))
    with pytest.raises(ValueError):
        T.Precision(class_id=1).update_state(y, p, backend.to(np.ones((4, 3), np.float32)))  # (N, C) weights
    with pytest.raises(ValueError, match="same shape"):
        T.AUC().update_state(y, backend.to(np.ones((4, 2), np.float32)))
    with pytest.raises(ValueError, match="rank 2"):
        T.AUC(multi_label=True).update_state(backend.to(np.zeros(4, np.float32)), backend.to(np.ones(4, np.float32)))
    with pytest.raises(ValueError, match="label_weights"):
        T.AUC(label_weights=[1, 2]).update_state(y, p)


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        T.TruePositives(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError):
        T.Precision(thresholds=[0.5, float("nan")])
    with pytest.raises(ValueError, match="NaN"):
        T.AUC(thresholds=[0.5, float("nan")])
    with pytest.raises(ValueError):
        T.AUC(num_thresholds=1)
    with pytest.raises(ValueError):
        T.AUC(curve="XYZ")
    with pytest.raises(ValueError):
        T.AUC(summation_method="trapezoid")
    with pytest.raises(ValueError):
        T.AUC(num_labels=3)
    with pytest.raises(ValueError):
        T.SensitivityAtSpecificity(1.5)
    with pytest.raises(ValueError):
        T.PrecisionAtRecall(0.5, num_thresholds=0)
    with pytest.raises(ValueError):
        T.AUC(label_weights=[1.0, -1.0])
    assert T.AUC(curve="pr", summation_method="Minoring").get_config()["curve"] == "PR"


# ------------------------------------------------------------------------------------------ state and config


def test_reset_merge_pickle(backend):
    batches = _data(11, (40, 30, 50), weights=True)
    a, b, whole = T.AUC(curve="PR"), T.AUC(curve="PR"), T.AUC(curve="PR")
    for i, (y, p, w) in enumerate(batches):
        (a if i % 2 else b).update_state(backend.to(y), backend.to(p), backend.to(w))
        whole.update_state(backend.to(y), backend.to(p), backend.to(w))
    a.merge_state(b)
    np.testing.assert_allclose(backend.host(a.result()), backend.host(whole.result()), rtol=1e-6)
    clone = pickle.loads(pickle.dumps(whole))
    assert clone.device == whole.device  # a pickled GPU metric comes back on its GPU
    np.testing.assert_allclose(backend.host(clone.result()), backend.host(whole.result()), rtol=1e-6)
    whole.reset_state()
    assert float(backend.host(whole.result())) == 0.0


def test_get_config_round_trip():
    for m in (T.AUC(thresholds=[0.2, 0.7], curve="PR", multi_label=True, num_labels=2, label_weights=[1, 2]),
              T.Precision(thresholds=[0.3], top_k=2, class_id=1), T.TruePositives(0.3),
              T.RecallAtPrecision(0.7, num_thresholds=10, class_id=2)):
        config = m.get_config()
        clone = type(m).from_config(config)
        assert clone.get_config() == config
    assert T.AUC(thresholds=[0.5, 0.2]).thresholds == pytest.approx([-1e-7, 0.2, 0.5, 1 + 1e-7])


def test_preloaded_state_past_2_32(backend):
    """Counts near 2^32 in a loaded state keep adding exactly (int64 state)."""
    m = T.TruePositives()
    m.update_state(backend.to(np.array([1.0], np.float32)), backend.to(np.array([0.9], np.float32)))
    sd = m.state_dict()
    sd["state"]["pos_count"][0, 1] = 2**32 - 1
    m2 = T.TruePositives()
    if backend.is_cuda:
        m2.update_state(backend.to(np.array([0.0], np.float32)), backend.to(np.array([0.0], np.float32)))
    m2.load_state_dict(sd)
    m2.update_state(backend.to(np.ones(3, np.float32)), backend.to(np.full(3, 0.9, np.float32)))
    assert m2.state_dict()["state"]["pos_count"][0, 1] == 2**32 + 2


def test_multilabel_built_by_loaded_state():
    rng = np.random.default_rng(12)
    y = rng.integers(0, 2, (30, 3)).astype(np.float32)
    p = rng.random((30, 3)).astype(np.float32)
    a = T.AUC(multi_label=True)
    a.update_state(y, p)
    b = T.AUC(multi_label=True)
    b.load_state_dict(a.state_dict())
    b.update_state(y, p)
    a.update_state(y, p)
    np.testing.assert_allclose(np.asarray(b.result()), np.asarray(a.result()))
    with pytest.raises(ValueError):
        b.update_state(y[:, :2], p[:, :2])
    c = pickle.loads(pickle.dumps(a))
    assert c._dplan is None
    np.testing.assert_allclose(np.asarray(c.result()), np.asarray(a.result()))
