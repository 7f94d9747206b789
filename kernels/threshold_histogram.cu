// threshold_histogram: one pass over (scores, labels, optional weights) that adds, per threshold bucket,
// the positive and the negative count (or weight) of a batch. Every thresholded binary metric of Keras
// (TP/FP/TN/FN, Precision, Recall, AUC, the four "X at Y") is a suffix sum of this histogram.
//
// Mirror: gpumetrics/_cpu/threshold_histogram.py (Numba). Launcher: gpumetrics/_cuda/threshold_histogram.py.
//
// The data is a 2-D view (rows x columns, element strides per input, strides may be 0 for broadcast
// weights). Columns [col0, col0 + n_cols) are counted (one column with class_id); top_k ranks across all
// n_cols_all columns of a row. A score's bin is the number of thresholds it exceeds, 0..T, so the
// histogram has T + 1 bins per histogram column (one column, or one per label with per_column):
//
//   mode 0 (evenly spaced, Keras' bucket path):  p = clip(fl32(score), 0, 1),
//          b = ceil(fl32(p * fl32(T - 1))) - 1, b = max(b, 0) with epsilon thresholds; bin = b + 1.
//   mode 1 (any sorted list, Keras' direct path): bin = #{i : fl32(score) > fl32(t_i)} (strict >, no
//          clip), found by a guide table of uniform value cells over the thresholds plus a binary search
//          of the order-preserving integer keys inside one cell (O(log of the cell's thresholds)).
//
// Scores are reduced to the exact float32 bits first (integer arithmetic only, so CuPy's -ftz=true flushes
// nothing that Keras keeps). A score that top_k drops exceeds no threshold (bin 0), as Keras' NEG_INF does.
//
// Invalid values are counted, not accumulated: invalid[0] NaN scores, invalid[1] NaN labels,
// invalid[2] negative or NaN weights. Unweighted counts use 32-bit shared counters flushed to the int64
// output every flush_iters grid-stride steps (so no shared counter can pass 2^32); weighted sums are double
// (flushed once, at the end: the launcher passes a flush interval longer than the data).
#include "gm_common.cuh"

struct gm_noweight { unsigned char unused; };

template <typename TW> struct th_acc { typedef double shared_t; typedef double global_t; };
template <> struct th_acc<gm_noweight> { typedef unsigned int shared_t; typedef gm_i64 global_t; };

__device__ __forceinline__ unsigned int th_f32_bits(float v) {
    union { float f; unsigned int u; } x;
    x.f = v;
    return x.u;
}

__device__ __forceinline__ float th_bits_f32(unsigned int u) {
    union { unsigned int u; float f; } x;
    x.u = u;
    return x.f;
}

// fl32(d) as bits, rounded to nearest even as IEEE does, without any float32 arithmetic (so -ftz cannot
// flush a result that is subnormal in float32).
__device__ __forceinline__ unsigned int th_f64_to_f32_bits(double d) {
    union { double d; unsigned long long u; } x;
    x.d = d;
    const unsigned int sign = (unsigned int)(x.u >> 32) & 0x80000000u;
    const double a = fabs(d);
    if (a < 1.1754943508222875e-38) {  // below FLT_MIN: subnormal or zero in float32; scale by 2^149 exactly
        const double m = rint(a * 713623846352979940529142984724747568191373312.0);
        return sign | (unsigned int)m;
    }
    return th_f32_bits((float)d);  // normal range, inf or NaN: the conversion is exact-rounded, never flushed
}

__device__ __forceinline__ unsigned int th_score_bits(float v) { return th_f32_bits(v); }
__device__ __forceinline__ unsigned int th_score_bits(double v) { return th_f64_to_f32_bits(v); }
// binary16 -> binary32 is exact and never subnormal in binary32
__device__ __forceinline__ unsigned int th_score_bits(gm_half v) { return th_f32_bits(gm_half_to_float(v.bits)); }
__device__ __forceinline__ unsigned int th_score_bits(gm_bfloat16 v) { return (unsigned int)v.bits << 16; }

// from_logits: sigmoid in double of the stored value, then rounded to float32.
template <typename TS> __device__ __forceinline__ unsigned int th_sigmoid_bits(TS v) {
    const double x = gm_to_double(v);
    return th_f64_to_f32_bits(1.0 / (1.0 + exp(-x)));
}

// Order-preserving key of float32 bits: a > b (as floats, -0 == +0) <=> key(a) > key(b). NaN excluded.
__device__ __forceinline__ unsigned int th_key(unsigned int bits) {
    if ((bits & 0x7fffffffu) == 0u) return 0x80000000u;
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ int th_even_bin(unsigned int bits, float scale, int epsilon) {
    float p = th_bits_f32(bits);
    p = p < 0.0f ? 0.0f : (p > 1.0f ? 1.0f : p);  // Keras clips to [0, 1] on this path (+-inf included)
    int b = (int)ceilf(p * scale) - 1;
    // A positive subnormal score is > 0 in Keras (bucket 0), whatever -ftz did to the product above.
    if (bits - 1u < 0x007fffffu && b < 0) b = 0;
    if (epsilon && b < 0) b = 0;
    return b + 1;
}

// Guide cell of a score: uniform cells in value over the bulk of the thresholds, computed in double (never
// flushed by -ftz) exactly as the host computed the thresholds' cells, so the map is the same monotone
// function on both sides and cell g brackets the answer between guide[g] and guide[g + 1].
__device__ __forceinline__ int th_guide_cell(unsigned int bits, double guide_lo, double guide_scale, int n_guide) {
    const double x = ((double)th_bits_f32(bits) - guide_lo) * guide_scale;
    if (!(x > 0.0)) return 0;
    if (x >= (double)(n_guide - 1)) return n_guide - 1;
    return (int)x;
}

__device__ __forceinline__ int th_search_bin(unsigned int bits, const unsigned int* __restrict__ keys,
                                             const int* __restrict__ guide, int n_guide, double guide_lo,
                                             double guide_scale) {
    const int cell = th_guide_cell(bits, guide_lo, guide_scale, n_guide);
    const unsigned int key = th_key(bits);
    // The count of thresholds exceeded is the first index whose key is >= key, in [guide[cell], guide[cell+1]].
    int lo = guide[cell], hi = guide[cell + 1];
    while (hi - lo > 1) {  // rare: most cells hold at most one threshold
        const int mid = (lo + hi) >> 1;
        if (keys[mid] < key) lo = mid + 1; else hi = mid;
    }
    // Last step without a branch; keys[T] is a sentinel (0xffffffff), so keys[lo] is readable when lo == T.
    return lo + (int)((hi > lo) & (keys[lo] < key));
}

template <typename TW> __device__ __forceinline__ double th_weight(const TW* w, gm_i64 i) { return gm_to_double(w[i]); }
template <> __device__ __forceinline__ double th_weight<gm_noweight>(const gm_noweight*, gm_i64) { return 1.0; }

template <typename TW> struct th_is_weighted { static const bool value = true; };
template <> struct th_is_weighted<gm_noweight> { static const bool value = false; };

__device__ __forceinline__ void th_global_add(gm_i64* out, gm_i64 i, unsigned int v) {
    atomicAdd((unsigned long long*)(out + i), (unsigned long long)v);
}
__device__ __forceinline__ void th_global_add(double* out, gm_i64 i, double v) { atomicAdd(out + i, v); }

__device__ __forceinline__ unsigned int th_take(unsigned int* p) { return atomicExch(p, 0u); }
__device__ __forceinline__ double th_take(double* p) {
    union { unsigned long long u; double d; } x;
    x.u = atomicExch(reinterpret_cast<unsigned long long*>(p), 0ull);
    return x.d;
}

extern __shared__ double th_smem[];

template <typename TS, typename TL, typename TW>
__global__ void threshold_histogram(
        const TS* __restrict__ score, gm_i64 s_rs, gm_i64 s_cs,
        const TL* __restrict__ label, gm_i64 l_rs, gm_i64 l_cs, gm_u64 l_mask, gm_u64 l_nan,
        const TW* __restrict__ weight, gm_i64 w_rs, gm_i64 w_cs,
        const double* __restrict__ label_weight, int has_label_weight,
        gm_i64 n_rows, int n_cols_all, int col0, int n_cols,
        int mode, int n_thresholds, float scale, int epsilon,
        const unsigned int* __restrict__ keys, const int* __restrict__ guide, int n_guide,
        double guide_lo, double guide_scale,
        int top_k, int per_column, int from_logits,
        typename th_acc<TW>::global_t* out_pos, typename th_acc<TW>::global_t* out_neg,
        int use_shared, gm_i64 flush_iters, gm_u64* invalid) {
    typedef typename th_acc<TW>::shared_t acc_t;
    const bool weighted = th_is_weighted<TW>::value;
    const int n_bins = n_thresholds + 1;
    const gm_i64 n_hist = (gm_i64)(per_column ? n_cols : 1) * n_bins;  // bins of one of the two histograms
    acc_t* sh = reinterpret_cast<acc_t*>(th_smem);  // [0, n_hist) positives, [n_hist, 2 n_hist) negatives

    if (use_shared) {
        for (gm_i64 b = threadIdx.x; b < 2 * n_hist; b += blockDim.x) sh[b] = 0;
        __syncthreads();
    }

    gm_u64 bad_score = 0, bad_label = 0, bad_weight = 0;
    const gm_i64 total = n_rows * (gm_i64)n_cols;
    const gm_i64 stride = (gm_i64)blockDim.x * gridDim.x;
    const gm_i64 limit = ((gm_i64)1 << 62) / stride;
    const gm_i64 chunk = stride * (flush_iters < limit ? (flush_iters > 0 ? flush_iters : 1) : limit);

    // The chunk loop's bounds depend on the block only, so every thread reaches the barriers of a flush.
    gm_i64 start = (gm_i64)blockIdx.x * blockDim.x;
    while (start < total) {
        const gm_i64 stop = start + chunk < total ? start + chunk : total;
        for (gm_i64 e = start + threadIdx.x; e < stop; e += stride) {
            gm_i64 r;
            int j;
            if (n_cols == 1) { r = e; j = 0; }
            else if (total <= 0xffffffffLL) { r = (unsigned int)e / (unsigned int)n_cols; j = (int)((unsigned int)e - (unsigned int)r * (unsigned int)n_cols); }
            else { r = e / n_cols; j = (int)(e - r * n_cols); }
            const int c = col0 + j;

            const TS sv = score[r * s_rs + (gm_i64)c * s_cs];
            const unsigned int bits = from_logits ? th_sigmoid_bits(sv) : th_score_bits(sv);
            if ((bits & 0x7fffffffu) > 0x7f800000u) { ++bad_score; continue; }
            const gm_u64 lbits = (gm_u64)label[r * l_rs + (gm_i64)c * l_cs] & l_mask;
            if (lbits > l_nan) { ++bad_label; continue; }
            double w = 1.0;
            if (weighted) {
                w = th_weight<TW>(weight, r * w_rs + (gm_i64)c * w_cs);
                if (has_label_weight) w *= label_weight[c];
                if (!(w >= 0.0)) { ++bad_weight; continue; }
            }

            bool kept = true;
            if (top_k > 0) {  // rank of this entry in its row: larger scores, then equal ones at lower index
                const unsigned int k = th_key(bits);
                const TS* row = score + r * s_rs;
                int rank = 0;
                for (int q = 0; q < n_cols_all && rank < top_k; ++q) {
                    const unsigned int kq = th_key(th_score_bits(row[(gm_i64)q * s_cs]));
                    rank += (kq > k) || (kq == k && q < c);
                }
                kept = rank < top_k;
            }
            int bin;
            if (!kept) bin = 0;
            else if (mode == 0) bin = th_even_bin(bits, scale, epsilon);
            else bin = th_search_bin(bits, keys, guide, n_guide, guide_lo, guide_scale);

            const gm_i64 idx = (gm_i64)(per_column ? j : 0) * n_bins + bin + (lbits != 0 ? 0 : n_hist);
            if (use_shared) {
                if (weighted) atomicAdd(reinterpret_cast<double*>(sh) + idx, w);
                else atomicAdd(reinterpret_cast<unsigned int*>(sh) + idx, 1u);
            } else {
                typename th_acc<TW>::global_t* out = idx < n_hist ? out_pos : out_neg;
                th_global_add(out, idx < n_hist ? idx : idx - n_hist, (acc_t)(weighted ? w : 1.0));
            }
        }
        if (use_shared) {  // flush: before a 32-bit counter could wrap, and at the end
            __syncthreads();  // every increment of this chunk is in shared memory
            // Read-and-reset atomically: a thread already in the next chunk may add to a bin being flushed;
            // its increment goes out now or with the next flush, never lost, so no barrier is needed after.
            for (gm_i64 b = threadIdx.x; b < 2 * n_hist; b += blockDim.x) {
                const acc_t v = th_take(sh + b);
                if (v != 0) th_global_add(b < n_hist ? out_pos : out_neg, b < n_hist ? b : b - n_hist, v);
            }
        }
        start += chunk;
    }
    if (bad_score) atomicAdd((unsigned long long*)(invalid + 0), (unsigned long long)bad_score);
    if (bad_label) atomicAdd((unsigned long long*)(invalid + 1), (unsigned long long)bad_label);
    if (bad_weight) atomicAdd((unsigned long long*)(invalid + 2), (unsigned long long)bad_weight);
}
