"""The threshold_histogram op: CPU/CUDA mirror, exact bucket placement, guide-table search, flush and
global-atomics paths, counts past 2^32."""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

from gpumetrics._cpu import threshold_histogram as cpu_op
from gpumetrics._cuda import threshold_histogram as cuda_op
from gpumetrics.functional import threshold as F
from gpumetrics.metrics import threshold as T
from reference.threshold import bucket_edge_scores, spec_counts


def test_mirror_signature():
    assert inspect.signature(cpu_op.threshold_histogram) == inspect.signature(cuda_op.threshold_histogram)


def test_registry_covers_every_input_kind():
    for s in cuda_op.SCORE_TYPES.values():
        for lab in cuda_op.LABEL_TYPES.values():
            for w in cuda_op.WEIGHT_TYPES.values():
                assert f"threshold_histogram<{s}, {lab}, {w}>" in cuda_op.KERNELS


def _counts(metric, backend):
    state, xp = metric._state()
    return [backend.host(a) for a in metric._counts(state, xp)]


def _check_against_spec(backend, metric, y, p, w=None, even=None, epsilon=None):
    metric.update_state(backend.to(y), backend.to(p), backend.to(w))
    got = _counts(metric, backend)
    ref = spec_counts(y, p, metric.thresholds, w, even=even, epsilon=epsilon)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(g[0], r.astype(np.float32))


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 63, 64, 65, 257])
def test_even_bucket_sizes(backend, n):
    rng = np.random.default_rng(n)
    p = bucket_edge_scores(200, rng, n)
    y = rng.integers(0, 2, n).astype(np.uint8)
    _check_against_spec(backend, T.AUC(), y, p, even=True, epsilon=True)
    _check_against_spec(backend, T.SensitivityAtSpecificity(0.5, num_thresholds=200), y, p, even=True, epsilon=False)


def test_user_list_guide_search(backend):
    """1,000 thresholds, some clustered within a few ulps, some duplicated: strict > on every score."""
    rng = np.random.default_rng(1)
    base = rng.random(900).astype(np.float32)
    cluster = np.nextafter(np.float32(0.5), np.float32(1)) + np.arange(60, dtype=np.float32) * np.float32(6e-8)
    thresholds = np.concatenate([base, cluster, base[:40]]).astype(np.float32)
    p = np.concatenate([rng.random(300).astype(np.float32), thresholds[::5],
                        np.nextafter(thresholds[::7], np.float32(2)), np.array([-0.0, 0.0, 1.0, 2.0, -2.0],
                                                                                np.float32)])
    y = rng.integers(0, 2, p.size).astype(np.float32)
    m = T.TruePositives(thresholds=thresholds.tolist())
    assert not m._plan.even
    _check_against_spec(backend, m, y, p)


def test_direct_path_signed_zero_and_subnormals(backend):
    """-0.0 == 0.0; subnormal and tiny float64 scores are rounded to float32 as Keras casts them."""
    tiny = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-40, 5e-46, 8e-46, 1e-39, -1e-39, 1e-300, 0.5], np.float64)
    y = np.ones(tiny.size, np.float32)
    for p in (tiny, tiny.astype(np.float32)):
        m = T.TruePositives(thresholds=[0.0, 1e-40])
        _check_against_spec(backend, m, y, p)
        m = T.AUC(num_thresholds=200)
        _check_against_spec(backend, m, y, p, even=True, epsilon=True)
        m = T.PrecisionAtRecall(0.5, num_thresholds=5)
        _check_against_spec(backend, m, y, p, even=True, epsilon=False)


def test_half_scores_every_pattern(backend):
    """All finite float16 values: widened exactly, bucketed as their float32 value."""
    h = np.arange(0, 0x7C00, 7, dtype=np.uint16)
    h = np.concatenate([h, h | 0x8000]).view(np.float16)
    y = (np.arange(h.size) % 2).astype(np.float32)
    _check_against_spec(backend, T.AUC(), y, h, even=True, epsilon=True)
    _check_against_spec(backend, T.TruePositives(thresholds=[0.1, 0.0, 0.7]), y, h)


def test_weighted_counts(backend):
    rng = np.random.default_rng(2)
    p = bucket_edge_scores(50, rng, 97)
    y = rng.integers(0, 2, 97).astype(np.float32)
    w = rng.choice(np.array([0.0, 0.25, 1.0, 3.0]), 97)
    m = T.AUC(num_thresholds=50)
    m.update_state(backend.to(y), backend.to(p), backend.to(w))
    ref = spec_counts(y, p, m.thresholds, w, even=True, epsilon=True)
    for g, r in zip(_counts(m, backend), ref):
        np.testing.assert_allclose(g[0], r, rtol=1e-6)


def test_top_k_long_rows_cpu():
    """Rows longer than 64 take the per-row sort on the CPU; same result as the rank scan."""
    rng = np.random.default_rng(3)
    p = np.round(rng.random((6, 150)), 2).astype(np.float32)  # many ties
    y = rng.integers(0, 2, p.shape).astype(np.float32)
    m = T.Precision(top_k=7)
    m.update_state(y, p)
    order = np.argsort(-p, axis=1, kind="stable")[:, :7]
    hits = np.take_along_axis(y, order, axis=1)
    assert float(m.result()) == pytest.approx(hits.mean(), abs=1e-7)


@pytest.fixture
def emu(emulated_cuda):
    return emulated_cuda


def test_emu_flush_and_global_paths(emu, monkeypatch):
    """Tiny flush interval (every grid-stride step) and the global-atomics fallback give identical counts."""
    from cuda_emu import to_device

    rng = np.random.default_rng(4)
    p = bucket_edge_scores(200, rng, 700)
    y = rng.integers(0, 2, 700).astype(np.uint8)
    expected = spec_counts(y, p, T.AUC().thresholds, even=True, epsilon=True)
    for flush, limit in ((64, cuda_op.SHARED_LIMIT), (cuda_op.FLUSH_INTERVAL, 0), (64, 0)):
        monkeypatch.setattr(cuda_op, "FLUSH_INTERVAL", flush)
        monkeypatch.setattr(cuda_op, "SHARED_LIMIT", limit)
        for w in (None, np.full(700, 0.5)):
            m = T.AUC()
            m.update_state(to_device(y), to_device(p), None if w is None else to_device(w))
            state, xp = m._state()
            got = [a.get()[0] for a in m._counts(state, xp)]
            scale = 1.0 if w is None else 0.5
            for g, r in zip(got, expected):
                np.testing.assert_array_equal(g, (r * scale).astype(np.float32))


def test_emu_multilabel_global_fallback(emu, monkeypatch):
    from cuda_emu import to_device

    rng = np.random.default_rng(5)
    p = rng.random((80, 3)).astype(np.float32)
    y = rng.integers(0, 2, (80, 3)).astype(np.float32)
    monkeypatch.setattr(cuda_op, "SHARED_LIMIT", 0)
    a, b = T.AUC(multi_label=True), T.AUC(multi_label=True)
    a.update_state(to_device(y), to_device(p))
    b.update_state(y, p)
    np.testing.assert_allclose(a.result().get(), np.asarray(b.result()), rtol=1e-6)


def test_bit_identical_cpu_and_emu(emu):
    from cuda_emu import to_device

    rng = np.random.default_rng(6)
    p = rng.random((70, 5)).astype(np.float32)
    y = rng.integers(0, 3, (70, 5)).astype(np.int64)
    for cls, kwargs in (("AUC", {"multi_label": True}), ("Recall", {"top_k": 2}), ("Precision", {"class_id": 3}),
                        ("AUC", {"thresholds": list(rng.random(30))})):
        a, b = getattr(T, cls)(**kwargs), getattr(T, cls)(**kwargs)
        a.update_state(to_device(y), to_device(p))
        b.update_state(y, p)
        sa, sb = a.state_dict()["state"], b.state_dict()["state"]
        for k in sa:
            np.testing.assert_array_equal(sa[k], sb[k])


@pytest.mark.parametrize("thresholds", [
    np.linspace(0.0005, 0.9995, 1000),
    np.concatenate([np.random.default_rng(7).random(500), np.random.default_rng(8).standard_normal(100) * 1e3,
                    [0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf]]),
    np.full(50, 0.25), [0.5], [1e-38, 2e-38, 3e-38],
])
def test_plan_guide_table_brackets_every_key(thresholds):
    plan = F.make_plan(np.asarray(thresholds, np.float64), even=False)
    keys = plan.keys.astype(np.int64)[:-1]
    assert np.all(np.diff(plan.keys.astype(np.int64)) >= 0) and plan.keys[-1] == 0xFFFFFFFF
    rng = np.random.default_rng(9)
    probe = np.concatenate([np.asarray(thresholds, np.float32), rng.standard_normal(1000).astype(np.float32),
                            rng.random(1000).astype(np.float32), np.array([np.inf, -np.inf, 0.0], np.float32)])
    cells = F.guide_cells(probe, plan.guide_lo, plan.guide_scale, plan.guide.size - 1)
    exact = np.searchsorted(keys, F.float_keys(probe).astype(np.int64), side="left")
    assert np.all(plan.guide[cells] <= exact) and np.all(exact <= plan.guide[cells + 1])


def test_guide_cells_are_short_for_spread_thresholds():
    plan = F.make_plan([-1e-7] + list(np.linspace(0.0005, 0.9995, 1000)) + [1 + 1e-7], even=False)
    assert np.diff(plan.guide).max() <= 4


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("GPUMETRICS_SKIP_HUGE") == "1", reason="GPUMETRICS_SKIP_HUGE=1")
def test_cpu_stream_past_2_32():
    """One buffer of 2^27 scores streamed 33 times: 4.4e9 counts, exact in int64."""
    n = 1 << 27
    p = np.full(n, 0.75, np.float32)
    y = np.ones(n, np.uint8)
    m = T.TruePositives()
    for _ in range(33):
        m.update_state(y, p)
    assert m.state_dict()["state"]["pos_count"][0].sum() == 33 * n
    assert float(m.result()) == np.float32(33 * n)


@pytest.mark.parametrize("min_part", [16, 1 << 30])
def test_cpu_parts_merge(monkeypatch, min_part):
    """Several private histograms (shrunk MIN_PART) and the serial one-part path give the same counts."""
    from gpumetrics._cpu import _common

    monkeypatch.setattr(_common, "MIN_PART", min_part)
    rng = np.random.default_rng(10)
    p = bucket_edge_scores(200, rng, 301)
    y = rng.integers(0, 2, 301).astype(np.float32)
    w = rng.choice(np.array([0.0, 0.5, 2.0]), 301)
    class _Numpy:
        name = "numpy"

        @staticmethod
        def to(x):
            return x

        @staticmethod
        def host(x):
            return np.asarray(x)

    for metric, even, eps in ((T.AUC(), True, True), (T.TruePositives(thresholds=[0.3, 0.1, 0.9]), None, None)):
        _check_against_spec(_Numpy, metric, y, p, even=even, epsilon=eps)
    m = T.AUC()
    m.update_state(y, p, w)
    for g, r in zip(_counts(m, _Numpy), spec_counts(y, p, m.thresholds, w, even=True, epsilon=True)):
        np.testing.assert_allclose(g[0], r, rtol=1e-12)
    a = T.AUC(multi_label=True)
    a.update_state(y[:300].reshape(100, 3), p[:300].reshape(100, 3))
    b = T.AUC(multi_label=True)
    monkeypatch.setattr(_common, "MIN_PART", 1 << 30)
    b.update_state(y[:300].reshape(100, 3), p[:300].reshape(100, 3))
    np.testing.assert_array_equal(a.state_dict()["state"]["pos_count"], b.state_dict()["state"]["pos_count"])
