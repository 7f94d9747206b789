// elementwise_sum: the Mean engine's one pass. Over a rows x cols grid of elements it adds
//     total += scale * sum(w * f(a, b))        count += scale * sum(w)
// where f is one of the FUNC_* below and w is the broadcast sample weight (1 when w is null).
// Every metric of the Mean family (Mean, Sum, MAE, MSE, RMSE, Accuracy, BinaryAccuracy) is this sum with
// its own f and scale (gpumetrics/functional/mean.py derives the scale from Keras' weighting rule).
//
// Each of a, b, w is addressed as base[r * stride_r + c * stride_c], so broadcast weights (stride 0) and
// any layout whose axes collapse to two strides run zero-copy. Element kinds are a launch-uniform switch
// (gm_load), not templates: the cost of this op is the memory read.
//
// invalid[0..2] count non-finite a, non-finite b and non-finite w.
#include "gm_common.cuh"

enum { FUNC_VALUE = 0, FUNC_ABS_ERROR = 1, FUNC_SQUARED_ERROR = 2, FUNC_EQUAL = 3, FUNC_BINARY_MATCH = 4 };

__device__ __forceinline__ double elementwise_value(int func, double a, double b, double threshold) {
    switch (func) {
        case FUNC_VALUE: return a;
        case FUNC_ABS_ERROR: return fabs(a - b);
        case FUNC_SQUARED_ERROR: return (a - b) * (a - b);
        case FUNC_EQUAL: return a == b ? 1.0 : 0.0;
        default: return a == (b > threshold ? 1.0 : 0.0);  // FUNC_BINARY_MATCH: y_true == (y_pred > t)
    }
}

extern "C" __global__ void elementwise_sum(const void* a, int a_kind, gm_i64 a_sr, gm_i64 a_sc,
                                           const void* b, int b_kind, gm_i64 b_sr, gm_i64 b_sc,
                                           const void* w, int w_kind, gm_i64 w_sr, gm_i64 w_sc,
                                           gm_i64 rows, gm_i64 cols, int func, double threshold, double scale,
                                           double* total, double* count, gm_u64* invalid) {
    __shared__ double partial[32];
    const gm_i64 n = rows * cols;
    const gm_i64 step = (gm_i64)blockDim.x * gridDim.x;
    const gm_i64 step_r = step / cols, step_c = step % cols;
    gm_i64 e = (gm_i64)blockIdx.x * blockDim.x + threadIdx.x;
    gm_i64 r = e / cols, c = e % cols;  // kept in step with e: no division inside the loop
    const bool has_b = func != FUNC_VALUE;
    double sum_wf = 0.0, sum_w = 0.0;
    unsigned bad_a = 0, bad_b = 0, bad_w = 0;
    for (; e < n; e += step) {
        const double av = gm_load(a, a_kind, r * a_sr + c * a_sc);
        const double bv = has_b ? gm_load(b, b_kind, r * b_sr + c * b_sc) : 0.0;
        const double wv = w ? gm_load(w, w_kind, r * w_sr + c * w_sc) : 1.0;
        bad_a += !gm_isfinite(av);
        bad_b += !gm_isfinite(bv);
        bad_w += !gm_isfinite(wv);
        sum_wf += wv * elementwise_value(func, av, bv, threshold);
        sum_w += wv;
        r += step_r;
        c += step_c;
        if (c >= cols) { c -= cols; ++r; }
    }
    // Invalid values are rare: count them with atomics only where they occur.
    if (bad_a) atomicAdd(&invalid[0], (gm_u64)bad_a);
    if (bad_b) atomicAdd(&invalid[1], (gm_u64)bad_b);
    if (bad_w) atomicAdd(&invalid[2], (gm_u64)bad_w);
    sum_wf = gm_block_sum(sum_wf, partial);
    sum_w = gm_block_sum(sum_w, partial);
    if (threadIdx.x == 0) {
        atomicAdd(total, scale * sum_wf);
        atomicAdd(count, scale * sum_w);
    }
}
