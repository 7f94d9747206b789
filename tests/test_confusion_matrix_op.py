"""The confusion_matrix and class_sums ops: mirror, exact counts on every layout and dtype, both GPU paths
(shared-memory privatised and global atomics), flushes of the 32-bit shared counters, counts past 2**32."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import gpumetrics as gm
from gpumetrics._cpu import class_sums as cpu_cs
from gpumetrics._cpu import confusion_matrix as cpu_cm
from gpumetrics._cuda import class_sums as cuda_cs
from gpumetrics._cuda import confusion_matrix as cuda_cm
from gpumetrics.metrics.confusion_matrix import ConfusionMatrix
from gpumetrics.metrics.iou import MeanIoU
from reference.confusion import confusion

SIZES = [0, 1, 31, 32, 33, 63, 64, 65, 97]


def test_ops_mirror_each_other():
    assert inspect.signature(cpu_cm.confusion_matrix) == inspect.signature(cuda_cm.confusion_matrix)
    assert inspect.signature(cpu_cs.class_sums) == inspect.signature(cuda_cs.class_sums)


def _metric_matrix(backend, batches, num_classes, **kwargs):
    m = ConfusionMatrix(num_classes, **kwargs)
    for batch in batches:
        m.update_state(*[backend.to(x) for x in batch])
    return backend.host(m.result())


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtypes", [("u1", "u1"), ("i1", "i2"), ("i4", "i8"), ("i8", "u1"), ("f4", "f8"),
                                    ("b1", "b1"), ("u2", "u4")])
def test_ids_counts_exact(backend, n, dtypes):
    rng = np.random.default_rng(n)
    C = 2 if "b1" in dtypes else 5
    t = rng.integers(0, C, n).astype(np.dtype(dtypes[0]).type if dtypes[0] != "b1" else bool)
    p = rng.integers(0, C, n).astype(np.dtype(dtypes[1]).type if dtypes[1] != "b1" else bool)
    got = _metric_matrix(backend, [(t, p), (t[: n // 3], p[: n // 3])], C)
    np.testing.assert_array_equal(got, confusion(t, p, C) + confusion(t[: n // 3], p[: n // 3], C))


@pytest.mark.parametrize("n", [1, 33, 65, 97])
@pytest.mark.parametrize("score_dtype", ["f2", "bf2", "f4", "f8"])
def test_fused_argmax_counts(backend, n, score_dtype):
    rng = np.random.default_rng(n)
    C = 4
    scores = np.round(rng.uniform(size=(n, C)) * 4) / 4  # exact ties: first index wins
    if score_dtype == "bf2":
        if backend.name != "torch":
            pytest.skip("bfloat16 arrays come from torch")
        import torch

        y_pred = torch.from_numpy(scores.astype(np.float32)).to(torch.bfloat16)
        batches_pred = y_pred
    else:
        batches_pred = scores.astype({"f2": np.float16, "f4": np.float32, "f8": np.float64}[score_dtype])
    t = rng.integers(0, C, n).astype(np.int64)
    m = ConfusionMatrix(C, sparse_y_pred=False)
    m.update_state(backend.to(t), batches_pred if score_dtype == "bf2" else backend.to(batches_pred))
    np.testing.assert_array_equal(backend.host(m.result()), confusion(t, scores.argmax(1), C))


def test_argmax_channels_first_and_channels_last(backend):
    rng = np.random.default_rng(7)
    B, C, H, W = 2, 3, 5, 7
    scores = rng.uniform(size=(B, C, H, W)).astype(np.float32)
    labels = rng.integers(0, C, (B, H, W)).astype(np.uint8)
    want = confusion(labels, scores.argmax(1), C)
    m = ConfusionMatrix(C, sparse_y_pred=False, axis=1)
    m.update_state(backend.to(labels), backend.to(scores))
    np.testing.assert_array_equal(backend.host(m.result()), want)
    # channels-last memory (NHWC storage of an NCHW tensor) and a sliced batch: zero-copy strided views
    nhwc = np.ascontiguousarray(scores.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if backend.name == "torch":
        import torch

        x = torch.from_numpy(scores).contiguous(memory_format=torch.channels_last)
        assert not x.is_contiguous()
    else:
        x = backend.to(nhwc) if backend.name == "numpy" else backend.to(scores)
    m = ConfusionMatrix(C, sparse_y_pred=False, axis=1)
    m.update_state(backend.to(labels), x)
    np.testing.assert_array_equal(backend.host(m.result()), want)
    m = ConfusionMatrix(C, sparse_y_pred=False, axis=1)
    m.update_state(backend.to(labels[:, ::2]), backend.to(np.ascontiguousarray(scores[:, :, ::2])))
    np.testing.assert_array_equal(backend.host(m.result()), confusion(labels[:, ::2], scores[:, :, ::2].argmax(1), C))


def test_non_contiguous_ids(backend):
    rng = np.random.default_rng(3)
    t = rng.integers(0, 4, (9, 10)).astype(np.int16)
    p = rng.integers(0, 4, (9, 10)).astype(np.int16)
    if backend.name == "numpy":
        tv, pv = t[::2, 1::3], p[::2, 1::3]
    else:
        tv, pv = backend.to(np.ascontiguousarray(t[::2, 1::3])), backend.to(np.ascontiguousarray(p[::2, 1::3]))
    got = _metric_matrix(backend, [(tv, pv)], 4) if backend.name != "numpy" else None
    if backend.name == "numpy":
        m = ConfusionMatrix(4)
        m.update_state(tv, pv)
        got = m.result()
    np.testing.assert_array_equal(got, confusion(t[::2, 1::3], p[::2, 1::3], 4))


def test_weights_and_ignore(backend):
    rng = np.random.default_rng(11)
    n, C = 97, 6
    t = rng.integers(0, C, n).astype(np.int32)
    t[::7] = 255
    p = rng.integers(0, C, n).astype(np.int32)
    w = rng.uniform(0, 2, n).astype(np.float32)
    w[::5] = 0
    got = _metric_matrix(backend, [(t, p, w), (t, p, 3.0)], C, ignore_class=255)
    want = confusion(t, p, C, w, 255) + confusion(t, p, C, 3.0, 255)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _emu_only(backend):
    if backend.name != "emu":
        pytest.skip("a launcher setting of the emulated GPU")


@pytest.mark.parametrize("weighted", [False, True])
def test_global_atomics_path_matches_shared_path(backend, monkeypatch, weighted):
    _emu_only(backend)
    rng = np.random.default_rng(5)
    n, C = 300, 7
    t = rng.integers(0, C, n).astype(np.uint8)
    p = rng.integers(0, C, n).astype(np.uint8)
    w = rng.integers(0, 3, n).astype(np.float64) if weighted else None
    batch = [(t, p, w)] if weighted else [(t, p)]
    shared = _metric_matrix(backend, batch, C)
    launches = backend_runtime().launches
    assert launches[-2].shared_mem > 0  # [-1] is the commit
    monkeypatch.setattr(cuda_cm, "SHARED_BYTES", 16)
    global_ = _metric_matrix(backend, batch, C)
    assert backend_runtime().launches[-2].shared_mem == 0
    np.testing.assert_array_equal(shared, global_)
    np.testing.assert_array_equal(shared, confusion(t, p, C, w))


def backend_runtime():
    from gpumetrics._cuda._runtime import get_runtime

    return get_runtime()


def test_flush_interval_shrunk(backend, monkeypatch):
    _emu_only(backend)
    monkeypatch.setattr(cuda_cm, "FLUSH_INTERVAL", 64)  # = BLOCK under emulation: a flush every round
    rng = np.random.default_rng(9)
    t = np.zeros(700, np.uint8)  # one hot cell, spread over many rounds and blocks
    p = rng.integers(0, 2, 700).astype(np.uint8)
    np.testing.assert_array_equal(_metric_matrix(backend, [(t, p)], 3), confusion(t, p, 3))


@pytest.mark.parametrize("n", [64, 700])
def test_uniform_regions(backend, monkeypatch, n):
    """Runs of equal pixels (whole warps in one cell: the kernel's warp-aggregated path), invalid runs, tails."""
    if backend.name == "emu":
        monkeypatch.setattr(cuda_cm, "FLUSH_INTERVAL", 64)
    t = np.repeat(np.array([0, 2, 1, 9, 2], np.uint8), -(-n // 5))[:n]  # 9: an ignored run
    p = np.repeat(np.array([0, 2, 2, 0, 1], np.uint8), -(-n // 5))[:n]
    p[n // 2] = 1  # one odd pixel inside a run
    np.testing.assert_array_equal(_metric_matrix(backend, [(t, p)], 3, ignore_class=9),
                                  confusion(t, p, 3, ignore_class=9))


def test_thousand_classes(backend):
    rng = np.random.default_rng(1)
    n, C = 257, 1000
    t = rng.integers(0, C, n).astype(np.int32)
    p = np.where(rng.uniform(size=n) < 0.5, t, rng.integers(0, C, n)).astype(np.int32)
    m = MeanIoU(C)
    m.update_state(backend.to(t), backend.to(p))
    if backend.name == "emu":
        assert backend_runtime().launches[-2].shared_mem == 0  # 4 MB matrix: the global path
    from reference.confusion import iou_from_cm

    assert float(backend.host(m.result())) == float(iou_from_cm(confusion(t, p, C), range(C)))


def test_invalid_counts_identical_on_every_backend(backend):
    t = np.array([0, 1, 7, -1, 2, 255, 1, 0, 1.5, np.nan], np.float32)
    p = np.array([0, 9, 1, 1, -3, 0, 1.25, np.inf, 0, 0], np.float32)
    w = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1], np.float64)
    w[0] = -1
    m = ConfusionMatrix(3, ignore_class=255)
    expected = ("2 y_true values are not class ids.*2 y_true class ids.*2 y_pred values.*2 y_pred class ids.*"
                "1 sample_weight")
    if backend.is_cuda:
        m.update_state(backend.to(t), backend.to(p), backend.to(w))
        with pytest.raises(gm.InvalidInputError, match=expected):
            m.result()
    else:
        with pytest.raises(gm.InvalidInputError, match=expected):
            m.update_state(backend.to(t), backend.to(p), backend.to(w))
        np.testing.assert_array_equal(m.result(), np.zeros((3, 3)))


def test_counts_past_2_to_the_32_preloaded(backend):
    """A preloaded state near 2**32 in one cell keeps counting exactly (int64 end to end)."""
    m = MeanIoU(2)
    m.update_state(backend.to(np.zeros(1, np.uint8)), backend.to(np.zeros(1, np.uint8)))
    state = m.state_dict()
    big = 2**32 - 3
    state["state"]["confusion_counts"] = np.array([[big, 0], [0, 0]], np.int64)
    m.load_state_dict(state)
    t = np.zeros(70, np.uint8)
    m.update_state(backend.to(t), backend.to(t))
    counts = m.state_dict()["state"]["confusion_counts"]
    assert counts.dtype == np.int64 and int(counts[0, 0]) == big + 70


def test_cpu_stream_past_2_to_the_32():  # ~8 s on 2 cores, so not marked slow
    """More than 2**32 pixels in one cell through repeated updates of one buffer: exact int64 counts."""
    buf = np.zeros(1 << 28, np.uint8)
    m = MeanIoU(2)
    updates = 17  # 17 * 2**28 = 4.56e9 > 2**32
    for _ in range(updates):
        m.update_state(buf, buf)
    counts = m.state_dict()["state"]["confusion_counts"]
    assert int(counts[0, 0]) == updates * (1 << 28) > 2**32
    assert float(m.result()) == np.float32(1) / np.float32(1 + 1e-7)


def test_numba_parts_merge(monkeypatch):
    """Several thread parts (shrunk MIN_PART) merge to the same counts on every kernel of the CPU op."""
    from gpumetrics._cpu import _common

    monkeypatch.setattr(_common, "MIN_PART", 8)
    monkeypatch.setattr(cpu_cm, "n_parts", lambda n: max(1, min(3, n // 8)))
    rng = np.random.default_rng(2)
    t = rng.integers(-1, 5, 200).astype(np.int8)
    p = rng.integers(0, 4, 200).astype(np.int8)
    for tt, pp in ((t, p), (t.astype(np.int32), p.astype(np.int32)), (t.astype(np.float32), p)):
        m = ConfusionMatrix(4, ignore_class=-1)
        m.update_state(tt[t < 4], pp[t < 4])
        np.testing.assert_array_equal(m.result(), confusion(tt[t < 4], pp[t < 4], 4, ignore_class=-1))


@pytest.mark.parametrize("layout", ["rows", "channels_first"])
def test_nan_scores_are_invalid_unless_ignored(backend, layout):
    scores = np.array([[0.1, 0.9, 0.0], [np.nan, 0.2, 0.1], [0.3, np.nan, 0.3], [0.5, 0.5, 0.1]], np.float32)
    t = np.array([1, 0, 9, 1], np.int64)  # the pixel with label 9 (ignored) has a NaN score: not counted
    axis = -1
    if layout == "channels_first":
        scores, t, axis = scores.T[None].copy(), t[None], 1
    m = ConfusionMatrix(3, ignore_class=9, sparse_y_pred=False, axis=axis)
    if backend.is_cuda:
        m.update_state(backend.to(t), backend.to(scores))
        with pytest.raises(gm.InvalidInputError, match="^[^;]*1 y_pred values"):
            m.result()
    else:
        with pytest.raises(gm.InvalidInputError, match="^[^;]*1 y_pred values"):
            m.update_state(backend.to(t), backend.to(scores))
    good = np.delete(scores, 1, axis=0) if layout == "rows" else np.delete(scores, 1, axis=2)
    m.reset_state()
    m.update_state(backend.to(np.delete(t, 1, axis=-1)), backend.to(good))
    np.testing.assert_array_equal(backend.host(m.result()), confusion([1, 1], [1, 0], 3))


def test_numba_byte_kernels_in_chunks(monkeypatch):
    """The 32-bit byte-kernel counters see at most BYTES_CHUNK pixels per call (shrunk here): chunks and the
    tail (fewer than 8 pixels, or a strided array) add up exactly."""
    monkeypatch.setattr(cpu_cm, "BYTES_CHUNK", 16)
    rng = np.random.default_rng(4)
    t = rng.integers(0, 6, 203).astype(np.uint8)
    p = rng.integers(0, 5, 203).astype(np.uint8)
    for tt, pp in ((t, p), (t[::3], p[::3])):
        m = ConfusionMatrix(5, ignore_class=5)
        m.update_state(tt, pp)
        np.testing.assert_array_equal(m.result(), confusion(tt, pp, 5, ignore_class=5))
