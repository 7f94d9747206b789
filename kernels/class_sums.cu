// class_sums: Keras' per-class sums for FBetaScore / F1Score in one pass. Mirror: gpumetrics/_cpu/class_sums.py.
//
// Inputs are (N, C) matrices read as stored through element strides (s_row, s_col). Per row n, with
// values cast to the metric's compute type (float32 by default, as Keras casts them; double when
// as_double):
//   pred_c = y_pred[n,c] > threshold                                   (has_threshold)
//   pred_c = y_pred[n,c] >= max_k y_pred[n,k]  and  |y_pred[n,c]| > 1e-9  (otherwise: every tied maximum)
//   tp_c += w*pred_c*y_c    fp_c += w*pred_c*(1-y_c)    fn_c += w*(1-pred_c)*y_c    support_c += w*y_c
// y_true is used as given (not binarised), as Keras does. Sums are double; terms that are 0 are skipped, so
// for 0/1 labels a row costs a few atomics. Invalid: y_true NaN/inf, y_pred NaN (a row with a NaN score is
// not counted), weight NaN/inf; counted into `invalid`, the commit decides.
//
// One thread per row. While 4*C doubles fit the launcher's shared budget, each block accumulates in shared
// memory and flushes once with double atomics; otherwise terms go straight to global memory.
#include "gm_common.cuh"

#define GM_CS_TRUE_VALUE 0
#define GM_CS_PRED_VALUE 1
#define GM_CS_WEIGHT 2
#define GM_CS_REASONS 3


// y_true's type is a runtime code (uniform over a launch); y_pred's is the template parameter.
__device__ __forceinline__ double gm_cs_load(const void* x, int kind, gm_i64 off, bool as_double) {
    switch (kind) {
        case GM_U8: return (double)((const unsigned char*)x)[off];
        case GM_I8: return (double)((const signed char*)x)[off];
        case GM_I16: return (double)((const short*)x)[off];
        case GM_I32: return as_double ? (double)((const int*)x)[off] : (double)(float)((const int*)x)[off];
        case GM_I64: return as_double ? (double)((const long long*)x)[off] : (double)(float)((const long long*)x)[off];
        case GM_F16: return gm_to_double(((const gm_half*)x)[off]);
        case GM_BF16: return gm_to_double(((const gm_bfloat16*)x)[off]);
        case GM_F32: return (double)((const float*)x)[off];
        default: return as_double ? ((const double*)x)[off] : (double)(float)((const double*)x)[off];
    }
}

template <typename T>
__device__ __forceinline__ double gm_cs_value(T v, bool as_double) {
    return as_double ? gm_to_double(v) : (double)gm_to_float(v);
}

template <typename TP>
__global__ void class_sums(const void* y_true, int t_kind, gm_i64 t_s_row, gm_i64 t_s_col,
                           const TP* y_pred, gm_i64 p_s_row, gm_i64 p_s_col,
                           const double* weights, int weighted, gm_i64 w_stride,
                           gm_i64 n, int num_classes, int has_threshold, double threshold, int as_double,
                           double* tp, double* fp, double* fn, double* support, gm_u64* invalid,
                           int use_shared) {
    extern __shared__ double gm_cs_smem[];
    const gm_i64 C = num_classes;
    double* acc_tp = use_shared ? gm_cs_smem : tp;
    double* acc_fp = use_shared ? gm_cs_smem + C : fp;
    double* acc_fn = use_shared ? gm_cs_smem + 2 * C : fn;
    double* acc_sup = use_shared ? gm_cs_smem + 3 * C : support;
    const bool dbl = as_double != 0;
    // Keras compares with |y_pred| > 1e-9 in the compute type.
    const double tiny = dbl ? 1e-9 : (double)1e-9f;

    if (use_shared) {
        for (gm_i64 k = threadIdx.x; k < 4 * C; k += blockDim.x) gm_cs_smem[k] = 0.0;
        __syncthreads();
    }
    gm_u64 bad[GM_CS_REASONS] = {0, 0, 0};
    GM_GRID_STRIDE_LOOP(row, n) {
        const TP* pr = y_pred + row * p_s_row;
        const gm_i64 tr = row * t_s_row;
        double w = 1.0;
        if (weighted) {
            w = weights[row * w_stride];
            if (w == 0.0) continue;  // a zero weight masks the row, as in the IoU op
            if (!gm_isfinite(w)) {
                bad[GM_CS_WEIGHT] += 1;
                continue;
            }
        }
        // One pass over the row to validate it (and find the maximum), so a bad row adds nothing.
        double mx = gm_cs_value(pr[0], dbl);
        bool nan_pred = false, bad_true = false;
        for (gm_i64 c = 0; c < C; ++c) {
            double v = gm_cs_value(pr[c * p_s_col], dbl);
            nan_pred |= !(v == v);
            if (v > mx) mx = v;
            bad_true |= !gm_isfinite(gm_cs_load(y_true, t_kind, tr + c * t_s_col, dbl));
        }
        if (bad_true) {
            bad[GM_CS_TRUE_VALUE] += 1;
            continue;
        }
        if (nan_pred) {
            bad[GM_CS_PRED_VALUE] += 1;
            continue;
        }
        for (gm_i64 c = 0; c < C; ++c) {
            double v = gm_cs_value(pr[c * p_s_col], dbl);
            bool pred = has_threshold ? v > threshold : (v >= mx && (v > tiny || v < -tiny));
            double y = gm_cs_load(y_true, t_kind, tr + c * t_s_col, dbl);
            if (pred) {
                if (y != 0.0) atomicAdd(&acc_tp[c], w * y);
                if (y != 1.0) atomicAdd(&acc_fp[c], w * (1.0 - y));
            } else if (y != 0.0) {
                atomicAdd(&acc_fn[c], w * y);
            }
            if (y != 0.0) atomicAdd(&acc_sup[c], w * y);
        }
    }
    if (use_shared) {
        __syncthreads();
        for (gm_i64 k = threadIdx.x; k < C; k += blockDim.x) {
            if (gm_cs_smem[k] != 0.0) atomicAdd(&tp[k], gm_cs_smem[k]);
            if (gm_cs_smem[C + k] != 0.0) atomicAdd(&fp[k], gm_cs_smem[C + k]);
            if (gm_cs_smem[2 * C + k] != 0.0) atomicAdd(&fn[k], gm_cs_smem[2 * C + k]);
            if (gm_cs_smem[3 * C + k] != 0.0) atomicAdd(&support[k], gm_cs_smem[3 * C + k]);
        }
    }
    for (int r = 0; r < GM_CS_REASONS; ++r)
        if (bad[r]) atomicAdd(&invalid[r], bad[r]);
}
