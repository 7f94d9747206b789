"""Mean, Sum, MeanMetricWrapper, MAE, MSE, RMSE against real Keras 3, streamed in several batches."""
from __future__ import annotations

import numpy as np
import pytest

import gpumetrics as gm
from reference.keras_ref import keras_result

RTOL, ATOL = 1e-5, 1e-6
SIZES = [1, 31, 32, 33, 63, 64, 65, 251]


def _stream(metric, backend, batches):
    for batch in batches:
        metric.update_state(*[backend.to(x) for x in batch])
    return backend.host(metric.result())


def _batches(rng, shapes, weight_shape=None, dtype=np.float32):
    out = []
    for shape in shapes:
        y_true = rng.normal(size=shape).astype(dtype)
        y_pred = rng.normal(size=shape).astype(dtype)
        w = None
        if weight_shape is not None:
            ws = weight_shape(shape)
            w = np.float32(rng.uniform(0, 2)) if ws == () else rng.uniform(0, 2, size=ws).astype(np.float32)
        out.append((y_true, y_pred, w))
    return out


WEIGHTINGS = {
    "none": None,
    "per_sample": lambda s: s[:1],
    "per_sample_col": lambda s: s[:1] + (1,),
    "scalar": lambda s: (),
}


@pytest.mark.parametrize("cls", ["MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError"])
@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
@pytest.mark.parametrize("shapes", [[(5, 3), (33, 3), (64, 3)], [(2, 4, 3), (7, 4, 3)]], ids=["2d", "3d"])
def test_regression_matches_keras(backend, cls, weighting, shapes):
    rng = np.random.default_rng(hash((cls, weighting, len(shapes))) % 2**32)
    batches = _batches(rng, shapes, WEIGHTINGS[weighting])
    ours = _stream(getattr(gm, cls)(), backend, batches)
    np.testing.assert_allclose(ours, keras_result(cls, batches), rtol=RTOL, atol=ATOL)
    assert ours.dtype == np.float32 and ours.shape == ()


@pytest.mark.parametrize("cls", ["MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError"])
def test_regression_1d_batches_are_one_sample_each(backend, cls):
    # Keras: 1-D MAE/MSE collapse each batch to one sample; RMSE stays elementwise.
    rng = np.random.default_rng(1)
    batches = _batches(rng, [(n,) for n in SIZES])
    ours = _stream(getattr(gm, cls)(), backend, batches)
    np.testing.assert_allclose(ours, keras_result(cls, batches), rtol=RTOL, atol=ATOL)


def test_mae_spec_example_two_batches(backend):
    m = gm.MeanAbsoluteError()
    ours = _stream(m, backend, [(np.array([0, 1, 2.0], np.float32), np.array([1, 1, 0.0], np.float32)),
                                (np.array([0.0], np.float32), np.array([10.0], np.float32))])
    assert ours == np.float32(5.5)


def test_rmse_element_weights(backend):
    rng = np.random.default_rng(2)
    batches = _batches(rng, [(6, 4), (33, 4)], lambda s: s)
    ours = _stream(gm.RootMeanSquaredError(), backend, batches)
    np.testing.assert_allclose(ours, keras_result("RootMeanSquaredError", batches), rtol=RTOL)


@pytest.mark.parametrize("n", SIZES)
def test_mean_values_and_weights(backend, n):
    rng = np.random.default_rng(n)
    values = [rng.normal(size=(n,)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)]
    weights = [rng.uniform(0, 1, size=(n,)).astype(np.float32), rng.uniform(0, 1, size=(n, 3)).astype(np.float32)]
    for v, w in zip(values, weights):
        batches = [(v, w), (v[: n // 2 + 1], None)]
        ours = _stream(gm.Mean(), backend, batches)
        np.testing.assert_allclose(ours, keras_result("Mean", batches), rtol=RTOL, atol=ATOL)
        ours = _stream(gm.Sum(), backend, batches)
        np.testing.assert_allclose(ours, keras_result("Sum", batches), rtol=RTOL, atol=1e-4)


def test_mean_scalar_weight_makes_batch_one_sample(backend):
    # spec 1.3: [1, 2, 3, 4] then [10] with sample_weight=1.0 gives 6.25; without weights 4.0.
    m = gm.Mean()
    m.update_state(backend.to(np.array([1, 2, 3, 4], np.float32)), 1.0)
    m.update_state(backend.to(np.array([10], np.float32)), 1.0)
    assert backend.host(m.result()) == np.float32(6.25)
    m.reset_state()
    m.update_state(backend.to(np.array([1, 2, 3, 4], np.float32)))
    m.update_state(backend.to(np.array([10], np.float32)))
    assert backend.host(m.result()) == np.float32(4.0)


def test_mean_edge_cases(backend):
    m = gm.Mean()
    assert float(m.result()) == 0.0  # no update: Keras' 0.0, as a numpy 0-d array
    m.update_state(backend.to(np.array([1.0, 2.0], np.float32)), backend.to(np.zeros(2, np.float32)))
    assert float(backend.host(m.result())) == 0.0  # all weights zero
    m.update_state(backend.to(np.zeros((0,), np.float32)))  # empty batch: no-op
    assert float(backend.host(m.result())) == 0.0
    s = gm.Sum()
    s.update_state(backend.to(np.array([1.0, 2.0], np.float32)), 3.0)
    assert float(backend.host(s.result())) == 9.0


def test_sum_counts_past_float32_precision():
    # Keras' float32 state stops at 2**24; ours is float64 (a documented deviation).
    s = gm.Sum()
    s.update_state(np.array([2.0**24], np.float32))
    s.update_state(np.array([1.0], np.float32))
    assert float(s.result()) == 2.0**24  # float32 result of the exact state 2**24 + 1 rounds
    assert gm.Sum(dtype="float64")(np.array([2.0**24 + 1], np.float64)) == 2.0**24 + 1


def test_mean_metric_wrapper(backend):
    def row_abs_sum(y_true, y_pred):
        xp = gm.xp(y_true)
        return xp.sum(xp.abs(y_true - y_pred), axis=-1)

    rng = np.random.default_rng(3)
    batches = _batches(rng, [(4, 3), (9, 3)], WEIGHTINGS["per_sample"])
    ours = _stream(gm.MeanMetricWrapper(row_abs_sum), backend, batches)
    expected = sum(float((w * np.abs(t - p).sum(-1)).sum()) for t, p, w in batches) / sum(
        float(w.sum()) for _, _, w in batches)
    np.testing.assert_allclose(ours, expected, rtol=RTOL)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_regression_other_float_dtypes(backend, dtype):
    rng = np.random.default_rng(4)
    batches = _batches(rng, [(8, 5), (3, 5)], dtype=dtype)
    ours = _stream(gm.MeanSquaredError(), backend, batches)
    expected = np.mean(np.concatenate([((t.astype(np.float64) - p.astype(np.float64)) ** 2).mean(-1)
                                       for t, p, _ in batches]))
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def test_bfloat16_torch_inputs_read_as_raw_words():
    torch = pytest.importorskip("torch")
    t = torch.tensor([[0.5, 1.5], [2.0, -1.0]], dtype=torch.bfloat16)
    p = torch.tensor([[0.25, 1.0], [2.0, 1.0]], dtype=torch.bfloat16)
    ours = gm.MeanAbsoluteError()(t, p)
    np.testing.assert_allclose(ours, np.mean([[0.25, 0.5], [0.0, 2.0]], axis=-1).mean(), rtol=1e-7)


def test_non_contiguous_and_channels_last_inputs(backend):
    rng = np.random.default_rng(5)
    base_t = rng.normal(size=(6, 8, 4)).astype(np.float32)
    base_p = rng.normal(size=(6, 8, 4)).astype(np.float32)
    for t, p in [(base_t[:, ::2], base_p[:, ::2]), (base_t.transpose(0, 2, 1), base_p.transpose(0, 2, 1)),
                 (base_t[::-1], base_p[::-1])]:
        ours = _stream(gm.MeanAbsoluteError(), backend, [(t, p, None)])
        np.testing.assert_allclose(ours, np.abs(t - p).mean(), rtol=1e-6)
