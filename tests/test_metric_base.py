"""The Metric base class: Keras API, names, config, merge, export, pickling, custom metrics, devices, bad input."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import gpumetrics as gm


class BinaryTruePositives(gm.Metric):
    """The subclass example of Keras' Metric docstring, written for gpumetrics."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="tp")

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = gm.xp(y_true, y_pred)
        values = xp.logical_and(xp.asarray(y_true) != 0, xp.asarray(y_pred) != 0).astype(xp.float64)
        if sample_weight is not None:
            values = values * xp.asarray(sample_weight)
        self.true_positives.assign_add(values.sum())

    def result(self):
        return self.true_positives.value


def test_custom_metric_keras_style(backend):
    m = BinaryTruePositives()
    y = np.array([1, 1, 0, 1], np.float32)
    p = np.array([1, 0, 1, 1], np.float32)
    m.update_state(backend.to(y), backend.to(p))
    m.update_state(backend.to(y), backend.to(p), backend.to(np.array([0.5, 1, 1, 2], np.float32)))
    assert float(backend.host(m.result())) == 2 + 2.5
    assert float(backend.host(m(backend.to(y), backend.to(p)))) == 6.5  # __call__ is cumulative
    m.reset_state()
    assert float(backend.host(m.result())) == 0.0
    assert m.variables[0].name == "tp"


def test_custom_metric_without_super_init_raises():
    class Broken(gm.Metric):
        def __init__(self):
            self.x = self.add_variable(shape=())

    with pytest.raises(RuntimeError, match="super"):
        Broken()


def test_default_names_follow_keras():
    class MyTinyMetric(gm.Metric):
        pass

    first, second = MyTinyMetric(), MyTinyMetric()
    assert (first.name, second.name) == ("my_tiny_metric", "my_tiny_metric_1")
    assert gm.MeanAbsoluteError().name == gm.MeanAbsoluteError().name == "mean_absolute_error"
    assert gm.metrics.base.to_snake_case("MeanIoU") == "mean_io_u"


ALL = [
    lambda: gm.Mean(), lambda: gm.Sum(), lambda: gm.MeanAbsoluteError(), lambda: gm.MeanSquaredError(),
    lambda: gm.RootMeanSquaredError(), lambda: gm.Accuracy(), lambda: gm.BinaryAccuracy(threshold=0.3),
    lambda: gm.CategoricalAccuracy(), lambda: gm.SparseCategoricalAccuracy(),
    lambda: gm.TopKCategoricalAccuracy(k=2), lambda: gm.SparseTopKCategoricalAccuracy(k=1, from_sorted_ids=True),
]


@pytest.mark.parametrize("make", ALL)
def test_config_round_trip(make):
    metric = make()
    clone = type(metric).from_config(metric.get_config())
    assert clone.get_config() == metric.get_config()
    assert "dtype" in metric.get_config() and "name" in metric.get_config()


def _feed(metric, backend, rng, n):
    y = rng.normal(size=(n, 3)).astype(np.float32)
    p = rng.normal(size=(n, 3)).astype(np.float32)
    w = rng.uniform(size=(n,)).astype(np.float32)
    metric.update_state(backend.to(y), backend.to(p), backend.to(w))


def test_merge_state_equals_one_metric_that_saw_everything(backend):
    rng = np.random.default_rng(0)
    parts = [gm.MeanSquaredError() for _ in range(3)]
    whole = gm.MeanSquaredError()
    for i, part in enumerate(parts):
        state = rng.bit_generator.state
        _feed(part, backend, rng, 10 + i)
        rng.bit_generator.state = state
        _feed(whole, backend, rng, 10 + i)
    merged = parts[0].merge_state(*parts[1:])
    np.testing.assert_allclose(backend.host(merged.result()), backend.host(whole.result()), rtol=1e-7)
    fresh = gm.MeanSquaredError().merge_state(parts[1])
    np.testing.assert_allclose(backend.host(fresh.result()), backend.host(parts[1].result()), rtol=1e-7)
    with pytest.raises(TypeError):
        parts[0].merge_state(gm.MeanAbsoluteError())


def test_state_dict_round_trip_and_pickle(backend):
    rng = np.random.default_rng(1)
    m = gm.RootMeanSquaredError()
    _feed(m, backend, rng, 20)
    exported = m.state_dict()
    assert exported["version"] == 1 and set(exported["state"]) == {"total", "count"}
    assert all(isinstance(v, np.ndarray) for v in exported["state"].values())
    restored = gm.RootMeanSquaredError()
    restored.load_state_dict(exported)
    np.testing.assert_allclose(backend.host(restored.result()), backend.host(m.result()), rtol=1e-7)
    for clone in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        np.testing.assert_allclose(backend.host(clone.result()), backend.host(m.result()), rtol=1e-7)
        assert clone.device == m.device  # a GPU metric's copy stays on its GPU
    with pytest.raises(ValueError, match="state_dict is for"):
        gm.Mean().load_state_dict(exported)


def test_result_dtype_and_repr(backend):
    m = gm.Mean(dtype="float64")
    m.update_state(backend.to(np.array([1.0, 2.0])))
    assert backend.host(m.result()).dtype == np.float64
    assert "Mean(name='mean', dtype='float64')" in repr(m)
    assert np.asarray(gm.Mean().result()).dtype == np.float32


def test_shape_errors_keep_state(backend):
    m = gm.MeanAbsoluteError()
    m.update_state(backend.to(np.ones((2, 3), np.float32)), backend.to(np.zeros((2, 3), np.float32)))
    before = backend.host(m.result())
    with pytest.raises(ValueError, match="y_true of shape"):
        m.update_state(backend.to(np.ones((2, 3), np.float32)), backend.to(np.ones((4, 5), np.float32)))
    with pytest.raises(ValueError, match="sample_weight of shape"):
        m.update_state(backend.to(np.ones((2, 3), np.float32)), backend.to(np.ones((2, 3), np.float32)),
                       backend.to(np.ones((5,), np.float32)))
    with pytest.raises(TypeError, match="y_pred"):
        m.update_state(backend.to(np.ones((2,), np.float32)), backend.to(np.ones((2,), np.complex64)))
    assert backend.host(m.result()) == before


def test_nan_and_inf_are_rejected_and_state_kept(backend):
    m = gm.Mean()
    m.update_state(backend.to(np.array([1.0, 3.0], np.float32)))
    bad = np.array([1.0, np.nan, np.inf], np.float32)
    if backend.is_cuda:
        m.update_state(backend.to(bad))  # no host sync: found on the device, raised at result()
        with pytest.raises(gm.InvalidInputError, match="2 values that are NaN or infinite"):
            m.result()
        with pytest.raises(gm.InvalidInputError):
            m.result()  # sticky until reset_state()
        m.reset_state()
        m.update_state(backend.to(np.array([1.0, 3.0], np.float32)))
    else:
        with pytest.raises(gm.InvalidInputError, match="2 values that are NaN or infinite"):
            m.update_state(backend.to(bad))
    assert float(backend.host(m.result())) == 2.0
    w_bad = np.array([1.0, np.nan], np.float32)
    mae = gm.MeanAbsoluteError()
    if not backend.is_cuda:
        with pytest.raises(gm.InvalidInputError, match="2 elements whose sample_weight is NaN"):
            mae.update_state(backend.to(np.ones((2, 2), np.float32)), backend.to(np.ones((2, 2), np.float32)),
                             backend.to(w_bad))
        assert float(mae.result()) == 0.0


def test_mixed_devices_are_an_error(emulated_cuda):
    from cuda_emu import to_device

    m = gm.Mean()
    with pytest.raises(ValueError, match="different devices"):
        gm.MeanAbsoluteError().update_state(np.ones(3, np.float32), to_device(np.ones(3, np.float32)))
    m.update_state(np.ones(3, np.float32))
    with pytest.raises(ValueError, match="state is on cpu"):
        m.update_state(to_device(np.ones(3, np.float32)))


def test_cuda_input_without_cupy_names_the_extra(monkeypatch):
    from gpumetrics._cuda import _runtime

    class FakeCudaArray:
        __cuda_array_interface__ = {"shape": (3,), "typestr": "<f4", "data": (0, True), "version": 3}

    monkeypatch.setattr(_runtime, "_installed", None)
    monkeypatch.setitem(__import__("sys").modules, "cupy", None)  # import cupy -> ImportError
    with pytest.raises(ImportError, match=r"gpumetrics\[cuda12\]"):
        gm.Mean().update_state(FakeCudaArray())


def test_torch_tensors_requiring_grad_are_detached():
    torch = pytest.importorskip("torch")
    t = torch.ones(4, 2, requires_grad=True)
    assert float(gm.MeanSquaredError()(t, t * 0)) == 1.0
