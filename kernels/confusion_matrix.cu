// confusion_matrix: accumulate a C x C confusion matrix (rows = true class, columns = predicted class) in
// one pass over a batch, for the IoU family and ConfusionMatrix. Mirror: gpumetrics/_cpu/confusion_matrix.py.
//
// Each side (y_true, y_pred) is read as stored, through a 3-D strided view (outer, K, inner) of its tensor,
// where K is the class axis (K = 1 for class ids). Pixel p is (p / inner, p % inner); its element for class
// c sits at (p / inner) * s_outer + c * s_class + (p % inner) * s_inner. That covers flat labels, (N, C)
// scores, NCHW (inner = H*W) and NHWC / channels-last (inner = 1) without a copy. A side is read in one of
// three modes:
//   GM_CM_IDS        the element is a class id: any integer, or an integral float;
//   GM_CM_ARGMAX     the id is the first index of the maximum over the K classes (fused: no argmax array);
//   GM_CM_THRESHOLD  (BinaryIoU) id = fl32(value) >= threshold ? 1 : 0, in float32 as Keras does.
// Per pixel, in this order (the CPU path follows the same order, so invalid counts match bit for bit):
//   y_true == ignore_class -> skipped; weight == 0 -> skipped; weight < 0, NaN or inf -> invalid (weight);
//   y_true not an integer / NaN -> invalid; outside [0, C) -> invalid; the same two checks for y_pred;
//   otherwise cm[t, q] += 1 (unweighted, 64-bit counts) or += w (weighted, double sums).
//
// Accumulation: while the matrix fits the launcher's shared-memory budget (use_shared), each block keeps
// `copies` private matrices in shared memory (warp w uses copy w % copies, which spreads the contention of
// uniform image regions; a warp whose 32 pixels share one cell adds 32 once), 32-bit counters flushed to
// global with 64-bit atomics every `rounds_per_flush` block-wide rounds (so no counter can wrap), and at the
// end. Beyond the budget (C = 1000: 4 MB) every pixel is one 64-bit global atomic. Weighted sums use double
// atomics on either path.
#include "gm_common.cuh"

#define GM_CM_IDS 0
#define GM_CM_ARGMAX 1
#define GM_CM_THRESHOLD 2

// Invalid-value reasons (slots of `invalid`), shared with the launchers.
#define GM_CM_TRUE_VALUE 0
#define GM_CM_TRUE_RANGE 1
#define GM_CM_PRED_VALUE 2
#define GM_CM_PRED_RANGE 3
#define GM_CM_WEIGHT 4
#define GM_CM_REASONS 5

// Status of reading one side of one pixel.
#define GM_CM_OK 0
#define GM_CM_BAD_VALUE 1

// An id that no valid class and no ignore_class can equal (floats beyond the int64 range).
#define GM_CM_FAR (-0x7fffffffffffffffLL - 1LL)

__device__ __forceinline__ gm_i64 gm_cm_offset(gm_i64 p, gm_i64 inner, gm_i64 s_outer, gm_i64 s_inner) {
    if (inner == 1) return p * s_outer;
    gm_i64 o = p / inner;
    return o * s_outer + (p - o * inner) * s_inner;
}

// Class id from an integer element: every value is an integer.
template <typename T>
__device__ __forceinline__ int gm_cm_id(T v, gm_i64& id) {
    id = (gm_i64)v;
    return GM_CM_OK;
}
// From a float element: NaN, +-inf and fractional values are not class ids.
__device__ __forceinline__ int gm_cm_id_double(double d, gm_i64& id) {
    if (!(d == d) || !gm_isfinite(d)) return GM_CM_BAD_VALUE;
    if (d >= 4.0e18 || d <= -4.0e18) {  // integral (|d| > 2^53) and far outside any class range
        id = GM_CM_FAR;
        return GM_CM_OK;
    }
    gm_i64 ll = (gm_i64)d;
    if ((double)ll != d) return GM_CM_BAD_VALUE;
    id = ll;
    return GM_CM_OK;
}
template <> __device__ __forceinline__ int gm_cm_id<float>(float v, gm_i64& id) {
    return gm_cm_id_double((double)v, id);
}
template <> __device__ __forceinline__ int gm_cm_id<double>(double v, gm_i64& id) { return gm_cm_id_double(v, id); }
template <> __device__ __forceinline__ int gm_cm_id<gm_half>(gm_half v, gm_i64& id) {
    return gm_cm_id_double(gm_to_double(v), id);
}
template <> __device__ __forceinline__ int gm_cm_id<gm_bfloat16>(gm_bfloat16 v, gm_i64& id) {
    return gm_cm_id_double(gm_to_double(v), id);
}

// Element loaders for y_true, whose type is a runtime code (one pass reads one uniform code, so the switch
// costs a predictable branch), while y_pred, the side that carries scores, is a template parameter: that
// keeps the instantiations to one per y_pred type.

template <typename T> struct gm_cm_typed {
    const T* x;
    __device__ __forceinline__ int id(gm_i64 off, gm_i64& out) const { return gm_cm_id<T>(x[off], out); }
    __device__ __forceinline__ double value(gm_i64 off) const { return gm_to_double(x[off]); }
    __device__ __forceinline__ float value32(gm_i64 off) const { return gm_to_float(x[off]); }
};

struct gm_cm_untyped {
    const void* x;
    int kind;
    __device__ __forceinline__ int id(gm_i64 off, gm_i64& out) const {
        switch (kind) {
            case GM_U8: return gm_cm_id<unsigned char>(((const unsigned char*)x)[off], out);
            case GM_I8: return gm_cm_id<signed char>(((const signed char*)x)[off], out);
            case GM_I16: return gm_cm_id<short>(((const short*)x)[off], out);
            case GM_I32: return gm_cm_id<int>(((const int*)x)[off], out);
            case GM_I64: return gm_cm_id<long long>(((const long long*)x)[off], out);
            case GM_F16: return gm_cm_id<gm_half>(((const gm_half*)x)[off], out);
            case GM_BF16: return gm_cm_id<gm_bfloat16>(((const gm_bfloat16*)x)[off], out);
            case GM_F32: return gm_cm_id<float>(((const float*)x)[off], out);
            default: return gm_cm_id<double>(((const double*)x)[off], out);
        }
    }
    __device__ __forceinline__ double value(gm_i64 off) const {
        switch (kind) {
            case GM_U8: return (double)((const unsigned char*)x)[off];
            case GM_I8: return (double)((const signed char*)x)[off];
            case GM_I16: return (double)((const short*)x)[off];
            case GM_I32: return (double)((const int*)x)[off];
            case GM_I64: return (double)((const long long*)x)[off];
            case GM_F16: return gm_to_double(((const gm_half*)x)[off]);
            case GM_BF16: return gm_to_double(((const gm_bfloat16*)x)[off]);
            case GM_F32: return (double)((const float*)x)[off];
            default: return ((const double*)x)[off];
        }
    }
    __device__ __forceinline__ float value32(gm_i64 off) const {
        switch (kind) {
            case GM_F16: return gm_to_float(((const gm_half*)x)[off]);
            case GM_BF16: return gm_to_float(((const gm_bfloat16*)x)[off]);
            case GM_F32: return ((const float*)x)[off];
            default: return (float)value(off);
        }
    }
};

// One side of pixel p as a class id (see the modes above).
template <typename L>
__device__ __forceinline__ int gm_cm_read(const L& x, int mode, gm_i64 p, gm_i64 classes, gm_i64 inner,
                                          gm_i64 s_outer, gm_i64 s_class, gm_i64 s_inner, float threshold,
                                          gm_i64& id) {
    const gm_i64 base = gm_cm_offset(p, inner, s_outer, s_inner);
    if (mode == GM_CM_IDS) return x.id(base, id);
    if (mode == GM_CM_THRESHOLD) {
        float v = x.value32(base);  // Keras converts y_pred to float32 before comparing
        if (!(v == v)) return GM_CM_BAD_VALUE;
        id = v >= threshold ? 1 : 0;
        return GM_CM_OK;
    }
    // argmax: first index of the maximum (strict >), compared exactly in double; any NaN is invalid.
    double best = x.value(base);
    bool nan = !(best == best);
    gm_i64 arg = 0;
    for (gm_i64 c = 1; c < classes; ++c) {
        double v = x.value(base + c * s_class);
        nan |= !(v == v);
        if (v > best) {
            best = v;
            arg = c;
        }
    }
    if (nan) return GM_CM_BAD_VALUE;
    id = arg;
    return GM_CM_OK;
}

template <typename TP>
__global__ void confusion_matrix(
    const void* y_true, int t_kind, int t_mode, gm_i64 t_classes, gm_i64 t_inner, gm_i64 t_s_outer, gm_i64 t_s_class,
    gm_i64 t_s_inner,
    const TP* y_pred, int p_mode, gm_i64 p_classes, gm_i64 p_inner, gm_i64 p_s_outer, gm_i64 p_s_class,
    gm_i64 p_s_inner, float threshold,
    const float* w4, const double* w8, int w_kind, gm_i64 w_stride,
    gm_i64 n, int num_classes, int has_ignore, gm_i64 ignore_class,
    gm_i64* counts, double* sums, gm_u64* invalid,
    int use_shared, int copies, gm_i64 rounds_per_flush) {
    extern __shared__ double gm_cm_smem[];  // double for alignment; counts reinterpret it as 32-bit words
    unsigned int* s_counts = (unsigned int*)gm_cm_smem;
    double* s_sums = gm_cm_smem;
    const bool weighted = w_kind != 0;
    const gm_i64 C = num_classes;
    const gm_i64 cells = C * C;
    const gm_i64 shared_cells = cells * copies;
    const gm_i64 my_copy = (gm_i64)((threadIdx.x / 32) % (unsigned)copies) * cells;

    if (use_shared) {
        for (gm_i64 k = threadIdx.x; k < shared_cells; k += blockDim.x) {
            if (weighted) s_sums[k] = 0.0;
            else s_counts[k] = 0u;
        }
        __syncthreads();
    }

    gm_u64 bad[GM_CM_REASONS] = {0, 0, 0, 0, 0};
    gm_i64 round = 0;
    const gm_i64 stride = (gm_i64)blockDim.x * gridDim.x;
    // The loop runs over block-wide rounds, so every thread of a block reaches each flush barrier.
    for (gm_i64 first = (gm_i64)blockIdx.x * blockDim.x; first < n; first += stride) {
        const gm_i64 p = first + threadIdx.x;
        gm_i64 cell = -1;
        double w = 1.0;
        if (p < n) {
            gm_i64 t, q;
            gm_cm_untyped tx = {y_true, t_kind};
            int st = gm_cm_read(tx, t_mode, p, t_classes, t_inner, t_s_outer, t_s_class, t_s_inner,
                                    threshold, t);
            bool ignored = has_ignore && st == GM_CM_OK && t == ignore_class;
            if (!ignored && weighted) {
                w = w_kind == 1 ? (double)w4[p * w_stride] : w8[p * w_stride];
                if (w == 0.0) ignored = true;
                else if (!(w > 0.0) || !gm_isfinite(w)) {
                    bad[GM_CM_WEIGHT] += 1;
                    ignored = true;
                }
            }
            if (!ignored) {
                if (st != GM_CM_OK) bad[GM_CM_TRUE_VALUE] += 1;
                else if (t < 0 || t >= C) bad[GM_CM_TRUE_RANGE] += 1;
                else {
                    gm_cm_typed<TP> px = {y_pred};
                    int sp = gm_cm_read(px, p_mode, p, p_classes, p_inner, p_s_outer, p_s_class, p_s_inner,
                                            threshold, q);
                    if (sp != GM_CM_OK) bad[GM_CM_PRED_VALUE] += 1;
                    else if (q < 0 || q >= C) bad[GM_CM_PRED_RANGE] += 1;
                    else cell = t * C + q;
                }
            }
        }
        if (use_shared && !weighted) {
            // Segmentation masks are spatially coherent: a whole warp often lands in one cell. Then lane 0 adds
            // the warp's count once instead of 32 same-address shared atomics (all lanes are converged here:
            // every thread runs every round and blockDim is a multiple of 32).
            const gm_i64 lead = __shfl_sync(0xffffffffu, cell, 0);
            if (__all_sync(0xffffffffu, cell == lead)) {
                if (lead >= 0 && (threadIdx.x & 31u) == 0u) atomicAdd(&s_counts[my_copy + lead], 32u);
            } else if (cell >= 0) {
                atomicAdd(&s_counts[my_copy + cell], 1u);
            }
        } else if (cell >= 0) {
            if (use_shared) atomicAdd(&s_sums[my_copy + cell], w);
            else if (weighted) atomicAdd(&sums[cell], w);
            else atomicAdd((gm_u64*)(counts + cell), 1ull);
        }
        if (use_shared && !weighted && ++round == rounds_per_flush) {
            // At most blockDim increments per round land in a block's counters: flush before they could wrap.
            __syncthreads();
            for (gm_i64 k = threadIdx.x; k < cells; k += blockDim.x) {
                gm_u64 v = 0;
                for (int r = 0; r < copies; ++r) {
                    v += s_counts[r * cells + k];
                    s_counts[r * cells + k] = 0u;
                }
                if (v) atomicAdd((gm_u64*)(counts + k), v);
            }
            __syncthreads();
            round = 0;
        }
    }

    if (use_shared) {
        __syncthreads();
        for (gm_i64 k = threadIdx.x; k < cells; k += blockDim.x) {
            if (weighted) {
                double v = 0.0;
                for (int r = 0; r < copies; ++r) v += s_sums[r * cells + k];
                if (v != 0.0) atomicAdd(&sums[k], v);
            } else {
                gm_u64 v = 0;
                for (int r = 0; r < copies; ++r) v += s_counts[r * cells + k];
                if (v) atomicAdd((gm_u64*)(counts + k), v);
            }
        }
    }
    for (int r = 0; r < GM_CM_REASONS; ++r)
        if (bad[r]) atomicAdd(&invalid[r], bad[r]);
}
