"""Self-tests of the CPU emulation of CUDA (tests/cuda_emu): intrinsics, barriers, poisoning, argument checks,
emulated device arrays, the no-host-sync guard, and the state_commit op against its CPU mirror.

The emulator is test infrastructure the op tests trust; these tests pin down that it behaves as a GPU does
where the kernels depend on it, and that it refuses what a GPU would silently get wrong.
"""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

import cuda_emu
from cuda_emu import EmuDeviceArray, EmuLaunchError, HostSyncError, no_host_sync, to_device

SELF_TEST_SOURCE = r"""
// Kernels that exercise what gpumetrics' kernels rely on. Compiled once (cached by content hash).
extern "C" __global__ void warp_ops(const double* xd, const long long* xl, const float* xf, int n,
                                    double* sum_d, unsigned long long* sum_l, unsigned* ballots, int* counts) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    double d = i < n ? xd[i] : 0.0;
    long long l = i < n ? xl[i] : 0;
    for (int o = 16; o > 0; o >>= 1) {
        d += __shfl_down_sync(0xffffffffu, d, o);
        l += __shfl_down_sync(0xffffffffu, l, o);
    }
    const int positive = i < n && xf[i] > 0.0f;
    const unsigned b = __ballot_sync(0xffffffffu, positive);
    const int c = __syncthreads_count(positive);
    if ((threadIdx.x & 31) == 0) {
        atomicAdd(sum_d, d);
        atomicAdd(sum_l, (unsigned long long)l);
        ballots[i / 32] = b;
    }
    if (threadIdx.x == 0) counts[blockIdx.x] = c;
}

// Privatised shared-memory histogram (the pattern of the project's histogram kernels).
extern "C" __global__ void smem_hist(const int* x, long long n, int bins, unsigned long long* hist) {
    extern __shared__ __align__(16) unsigned int h[];
    for (int b = threadIdx.x; b < bins; b += blockDim.x) h[b] = 0;
    __syncthreads();
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        atomicAdd(&h[x[i]], 1u);
    __syncthreads();
    for (int b = threadIdx.x; b < bins; b += blockDim.x)
        if (h[b]) atomicAdd(&hist[b], (unsigned long long)h[b]);
}

extern "C" __global__ void read_uninitialised(unsigned* out_static, float* out_dynamic) {
    __shared__ unsigned s[64];
    extern __shared__ float dyn[];
    out_static[threadIdx.x] = s[threadIdx.x % 64];
    out_dynamic[threadIdx.x] = dyn[threadIdx.x];
}

template <typename T>
__global__ void scale_add(const T* x, T a, T* y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)blockDim.x * gridDim.x)
        y[i] += a * x[i];
}

// Lanes 0-15 wait in a full-warp shuffle while lanes 16-31 wait at the block barrier: a deadlock on a GPU.
extern "C" __global__ void deadlock(int* out) {
    if ((threadIdx.x & 31) < 16) out[threadIdx.x] = __shfl_sync(0xffffffffu, (int)threadIdx.x, 0);
    else __syncthreads();
}

// Lanes call a shuffle with a mask that excludes themselves: undefined in CUDA, an error here.
extern "C" __global__ void bad_mask(int* out) {
    out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, (int)threadIdx.x, 1);
}

extern "C" __global__ void trap_if(int flag) { if (flag && threadIdx.x == 3) __trap(); }

// Off-by-one bounds: one element past a global array, one past the dynamic shared memory of the launch.
extern "C" __global__ void write_past(int* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[i] = 1;
}
extern "C" __global__ void smem_write_past(int n) {
    extern __shared__ int s[];
    for (int i = threadIdx.x; i <= n; i += blockDim.x) s[i] = 0;
}
"""

NAMES = ("scale_add<float>", "scale_add<double>")


@pytest.fixture(scope="module")
def mod():
    return cuda_emu.EmuModule(SELF_TEST_SOURCE, NAMES, name="self_test.cu")


# ---------------------------------------------------------------------------------------------- intrinsics
@pytest.mark.parametrize("n", [1, 31, 64, 100, 131])
def test_warp_shuffles_ballot_syncthreads_count_and_64bit_atomics(mod, n):
    rng = np.random.default_rng(n)
    xd = to_device(rng.standard_normal(n))
    xl = to_device(rng.integers(-2**40, 2**40, n))
    xf_host = rng.standard_normal(n).astype(np.float32)
    xf = to_device(xf_host)
    block, grid = 64, -(-n // 64)
    sum_d, sum_l = to_device(np.zeros(1)), to_device(np.zeros(1, np.uint64))
    ballots, counts = to_device(np.zeros(grid * 2, np.uint32)), to_device(np.zeros(grid, np.int32))
    mod.get_function("warp_ops")((grid,), (block,), (xd, xl, xf, np.int32(n), sum_d, sum_l, ballots, counts))
    assert sum_d.get()[0] == pytest.approx(xd.get().sum(), rel=1e-12)
    assert sum_l.get()[0] == np.uint64(int(xl.get().sum()) % 2**64)  # two's-complement wrap, as on a GPU
    positive = np.zeros(grid * block, bool)
    positive[:n] = xf_host > 0
    want_ballots = [sum(1 << b for b in range(32) if positive[32 * w + b]) for w in range(2 * grid)]
    assert ballots.get().tolist() == want_ballots
    assert counts.get().tolist() == [int(positive[b * block:(b + 1) * block].sum()) for b in range(grid)]


@pytest.mark.parametrize("n,bins,grid,block", [(0, 5, 1, 64), (1, 1, 1, 32), (1000, 37, 3, 64), (4099, 256, 4, 96)])
def test_shared_memory_histogram_with_dynamic_aligned_shared(mod, n, bins, grid, block):
    x = np.random.default_rng(0).integers(0, bins, n).astype(np.int32)
    hist = to_device(np.zeros(bins, np.uint64))
    mod.get_function("smem_hist")((grid,), (block,), (to_device(x), np.int64(n), np.int32(bins), hist),
                                  shared_mem=4 * bins)
    np.testing.assert_array_equal(hist.get(), np.bincount(x, minlength=bins))


def test_shared_memory_starts_poisoned(mod):
    out_s, out_d = to_device(np.zeros(64, np.uint32)), to_device(np.zeros(64, np.float32))
    mod.get_function("read_uninitialised")((2,), (64,), (out_s, out_d), shared_mem=64 * 4)
    assert (out_s.get() == 0xFFFFFFFF).all()
    assert np.isnan(out_d.get()).all()


def test_templates_by_name_expression(mod):
    for name, dt in zip(NAMES, (np.float32, np.float64)):
        x, y = to_device(np.arange(100, dtype=dt)), to_device(np.ones(100, dt))
        mod.get_function(name)((3,), (32,), (x, dt(2), y, np.int64(100)))
        np.testing.assert_array_equal(y.get(), 1 + 2 * np.arange(100, dtype=dt))
    with pytest.raises(KeyError, match="KERNELS"):
        mod.get_function("scale_add<int>")


def test_deadlock_is_reported_with_both_sites(mod):
    with pytest.raises(EmuLaunchError, match="deadlock") as err:
        mod.get_function("deadlock")((1,), (64,), (to_device(np.zeros(64, np.int32)),), timeout_ms=300)
    assert "self_test.cu" in str(err.value)


@pytest.mark.filterwarnings("ignore::cuda_emu.EmuWarning")  # lanes 0-15 read absent lanes before the error
def test_lane_outside_its_own_mask_is_an_error(mod):
    with pytest.raises(EmuLaunchError, match="not in mask"):
        mod.get_function("bad_mask")((1,), (32,), (to_device(np.zeros(32, np.int32)),))


def test_trap_aborts_the_launch(mod):
    mod.get_function("trap_if")((2,), (32,), (np.int32(0),))
    with pytest.raises(EmuLaunchError, match=r"__trap\(\) called by thread \(3,0,0\)"):
        mod.get_function("trap_if")((2,), (32,), (np.int32(1),))


def test_out_of_bounds_writes_are_launch_errors(mod):
    out = cuda_emu.xp.zeros(40, dtype=np.int32)
    with pytest.raises(EmuLaunchError, match="past the end of a 160-byte device allocation"):
        mod.get_function("write_past")((1,), (64,), (out, np.int32(40)))
    mod.get_function("write_past")((1,), (64,), (out, np.int32(39)))  # in bounds: fine, guard restored
    if os.environ.get("CUDA_EMU_SANITIZE") == "address":
        return  # ASan itself reports the shared-memory overrun (and aborts the process, as it should)
    with pytest.raises(EmuLaunchError, match="dynamic shared memory: byte 64 .* shared_mem=64"):
        mod.get_function("smem_write_past")((2,), (32,), (np.int32(16),), shared_mem=64)


def test_compile_errors_name_file_and_line():
    with pytest.raises(cuda_emu.EmuCompileError, match=r"broken\.cu:3"):
        cuda_emu.EmuModule('extern "C" __global__ void f(int* x) {\n\n  x[0] = undefined_name;\n}\n',
                           name="broken.cu")


# ---------------------------------------------------------------------------------------------- argument checks
def _hist_args(x=None, n=None, bins=None, hist=None):
    return (to_device(np.zeros(8, np.int32)) if x is None else x, np.int64(8) if n is None else n,
            np.int32(4) if bins is None else bins, to_device(np.zeros(4, np.uint64)) if hist is None else hist)


@pytest.mark.parametrize("args,error,match", [
    (_hist_args(x=to_device(np.zeros(8, np.int64))), TypeError, "dtype is int64"),
    (_hist_args(x=to_device(np.zeros(8, np.float32))), TypeError, "dtype is float32"),
    (_hist_args(x=np.zeros(8, np.int32)), TypeError, "host numpy array"),
    (_hist_args(n=8), TypeError, r"np.int64\(...\)"),
    (_hist_args(n=np.int32(8)), TypeError, "parameter is long long"),
    (_hist_args(bins=to_device(np.array(4, np.int32))), TypeError, "would pass its address"),
    (_hist_args(x=to_device(np.zeros(16, np.int32))[::2]), ValueError, "not C-contiguous"),
    (_hist_args()[:3], TypeError, "takes 4 arguments"),
])
def test_arguments_are_checked_against_the_cpp_parameters(mod, args, error, match):
    with pytest.raises(error, match=match):
        mod.get_function("smem_hist")((1,), (32,), args, shared_mem=16)


def test_strided_arrays_pass_when_the_launch_passes_their_strides(mod):
    # A kernel that takes strides may read a strided view; the emulator accepts it when the strides are passed.
    x = to_device(np.zeros((4, 3), np.float32)).T  # element strides (1, 3)
    y = to_device(np.zeros(12, np.float32))
    k = mod.get_function("scale_add<float>")
    with pytest.raises(ValueError, match="does not pass its strides"):
        k((1,), (32,), (x, np.float32(1), y, np.int64(12)))
    k((1,), (32,), (x, np.float32(1), y, np.int64(3)))  # 3 (and the unit stride 1) appear in the arguments


def test_raw_unsigned_words_and_bool_as_unsigned_char_are_accepted():
    src = 'extern "C" __global__ void f(const unsigned char* a, const unsigned int* b, int* out) {' \
          ' out[0] = a[0] + (b[0] != 0); }'
    k = cuda_emu.EmuModule(src, name="words.cu").get_function("f")
    out = to_device(np.zeros(1, np.int32))
    k((1,), (1,), (to_device(np.array([True])), to_device(np.array([-0.0], np.float32)), out))
    assert out.get()[0] == 2  # the bits of -0.0 are non-zero: raw-word readers mask the sign themselves
    with pytest.raises(TypeError):
        k((1,), (1,), (to_device(np.array([1], np.int16)), to_device(np.array([1], np.uint32)), out))


@pytest.mark.parametrize("grid,block,shared,match", [
    ((1,), (1025,), 0, "1024 threads"),
    ((0,), (32,), 0, "zero-sized"),
    ((1,), (32,), 48 * 1024 + 4, "max_dynamic_shared_size_bytes"),
])
def test_launch_configuration_limits(mod, grid, block, shared, match):
    with pytest.raises(EmuLaunchError, match=match):
        mod.get_function("smem_hist")(grid, block, _hist_args(), shared_mem=shared)


# ---------------------------------------------------------------------------------------------- device arrays
def test_device_arrays_stay_on_the_device():
    a = to_device(np.arange(6, dtype=np.int64).reshape(2, 3))
    for value in (a + 1, a * a, a[0], a[1, 2], a.sum(), (a > 2).any(), a.max(axis=0), np.sum(a), -a, a.T,
                  a.astype(np.float32), a.reshape(-1)[::2], cuda_emu.xp.where(a > 1, a, 0)):
        assert isinstance(value, EmuDeviceArray), type(value)
    assert a.sum().shape == () and a[1, 2].get() == 5
    b = a.reshape(-1)
    b[1:3] += 10  # views share device memory
    assert a.get()[0, 1] == 11
    assert a.device.id == 0 and a.shape == (2, 3) and a.dtype == np.int64 and len(a) == 2


def test_device_arrays_refuse_implicit_host_conversion_and_mixing():
    a = to_device(np.arange(3.0))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="cannot be mixed"):
        a + np.arange(3.0)
    assert (a + np.float64(1)).get().tolist() == [1.0, 2.0, 3.0]  # numpy scalars are fine, as in CuPy


def test_xp_allocates_device_arrays_and_empty_is_poisoned():
    xp = cuda_emu.xp
    assert isinstance(xp.zeros(3, dtype=np.uint64), xp.ndarray)
    assert isinstance(xp.zeros_like(to_device(np.ones(2))), EmuDeviceArray)
    assert isinstance(xp.asarray([1, 2]), EmuDeviceArray)
    assert np.isnan(xp.empty(4, dtype=np.float64).get()).all()
    assert (xp.empty(4, dtype=np.uint32).get() == 0xFFFFFFFF).all()
    assert xp.asnumpy(xp.arange(3)).tolist() == [0, 1, 2]


def test_dispatch_routes_device_arrays_to_cuda(emulated_cuda):
    from gpumetrics import _dispatch

    a = to_device(np.arange(4, dtype=np.float32))
    assert _dispatch.device_of(a) == _dispatch.Device("cuda", 0)
    arr = _dispatch.as_array(a, _dispatch.Device("cuda", 0), "y_pred")
    assert arr.kind == "f4" and arr.data is a

    class Foreign:  # any __cuda_array_interface__ producer is imported zero-copy
        __cuda_array_interface__ = a.__cuda_array_interface__

    imported = emulated_cuda.import_array(Foreign(), _dispatch.Device("cuda", 0))
    a[0] = 7
    assert imported.get()[0] == 7


@pytest.mark.parametrize("read", [
    lambda a: a.get(), lambda a: a.item(), lambda a: a.tolist(), lambda a: bool(a), lambda a: int(a),
    lambda a: float(a), lambda a: [0, 1][a], lambda a: repr(a), lambda a: str(a), lambda a: f"{a}",
    lambda a: pickle.dumps(a), lambda a: cuda_emu.xp.asnumpy(a), lambda a: cuda_emu.EmuRuntime().to_host(a),
], ids=["get", "item", "tolist", "bool", "int", "float", "index", "repr", "str", "format", "pickle", "asnumpy",
        "to_host"])
def test_host_reads_raise_inside_the_guard(read):
    a = to_device(np.array(1, np.int64))
    read(a)  # fine outside
    with no_host_sync("the test"), pytest.raises(HostSyncError, match="inside the test"):
        read(a)
    with no_host_sync(), cuda_emu.allow_host_sync():
        read(a)


def test_update_state_is_guarded_under_the_emulated_runtime(emulated_cuda):
    from gpumetrics.metrics.base import Metric

    class Syncing(Metric):
        def update_state(self, y_true, y_pred, sample_weight=None):
            if (y_pred > 0).any():  # a host read: synchronises on a GPU
                pass

    class DeviceOnly(Metric):
        def __init__(self):
            super().__init__()
            self.total = self.add_variable(shape=(), name="total")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.total.assign_add(y_pred.sum())

        def result(self):
            return self.total.value

    y = to_device(np.arange(5.0))
    with pytest.raises(HostSyncError, match="Syncing.update_state"):
        Syncing().update_state(y, y)
    m = DeviceOnly()
    m.update_state(y, y)
    m.update_state(y, y)
    assert m.result().get() == 20.0


# ---------------------------------------------------------------------------------------------- state_commit op
@pytest.mark.parametrize("n_int,n_float,n_reasons", [(1, 1, 1), (63, 1, 3), (64, 65, 2), (1, 257, 70), (131, 7, 1)])
@pytest.mark.parametrize("bad", [False, True])
def test_state_commit_matches_its_cpu_mirror(emulated_cuda, n_int, n_float, n_reasons, bad):
    from gpumetrics._cpu.state_commit import state_commit as cpu_commit
    from gpumetrics._cuda.state_commit import state_commit as cuda_commit

    rng = np.random.default_rng(n_int * 1000 + n_float)
    host = {
        "state_int": rng.integers(-2**62, 2**62, n_int), "scratch_int": rng.integers(0, 2**40, n_int),
        "state_float": rng.standard_normal(n_float), "scratch_float": rng.standard_normal(n_float),
        "invalid": np.zeros(n_reasons, np.uint64), "rejected": rng.integers(0, 5, n_reasons).astype(np.uint64),
    }
    if bad:
        host["invalid"][-1] = 3
    device = {k: to_device(v) for k, v in host.items()}
    with no_host_sync("state_commit"):
        cuda_commit(*device.values())
    cpu_commit(*host.values())
    for name, want in host.items():
        np.testing.assert_array_equal(device[name].get(), want, err_msg=name)
    launch = emulated_cuda.launches[-1]
    assert launch.kernel == "state_commit" and launch.block[0] % 32 == 0 and launch.block[0] >= n_reasons
