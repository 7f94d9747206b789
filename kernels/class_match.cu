// class_match: per-row class matches for the accuracy metrics, reduced in the same pass.
// For each row of a rows x cols grid (each row holds `n_classes` scores along `class_stride`):
//     target  = the class id (sparse y_true) or the first argmax of the one-hot y_true row
//     match   = MODE_ARGMAX:     target == first argmax of the scores
//               MODE_TOP_K:      fewer than k scores are strictly greater than score[target]  (Keras in_top_k:
//                                every tie at the boundary is a hit)
//               MODE_SORTED_IDS: target is one of the first k entries of the row (scores hold class ids)
//     total += scale * w * match          count += scale * w
// invalid[0] counts rows with a non-finite score, invalid[1] rows whose class id is fractional, out of
// [0, n_classes) or whose one-hot row is not finite, invalid[2] non-finite weights. Invalid rows add nothing.
#include "gm_common.cuh"

enum { MODE_ARGMAX = 0, MODE_TOP_K = 1, MODE_SORTED_IDS = 2 };

// First index of the row maximum; sets *finite to false if any entry is NaN or infinite.
__device__ __forceinline__ gm_i64 class_match_argmax(const void* p, int kind, gm_i64 row, gm_i64 stride,
                                                     gm_i64 n, bool* finite) {
    gm_i64 best = 0;
    double best_value = gm_load(p, kind, row);
    bool ok = gm_isfinite(best_value);
    for (gm_i64 j = 1; j < n; ++j) {
        const double v = gm_load(p, kind, row + j * stride);
        ok = ok && gm_isfinite(v);
        if (v > best_value) { best_value = v; best = j; }
    }
    *finite = ok;
    return best;
}

extern "C" __global__ void class_match(const void* scores, int s_kind, gm_i64 s_sr, gm_i64 s_sc, gm_i64 class_stride,
                                       gm_i64 n_classes, const void* target, int t_kind, gm_i64 t_sr, gm_i64 t_sc,
                                       gm_i64 t_class_stride, int target_one_hot,
                                       const void* w, int w_kind, gm_i64 w_sr, gm_i64 w_sc,
                                       gm_i64 rows, gm_i64 cols, int mode, gm_i64 k, double scale,
                                       double* total, double* count, gm_u64* invalid) {
    __shared__ double partial[32];
    double sum_wm = 0.0, sum_w = 0.0;
    unsigned bad_scores = 0, bad_target = 0, bad_w = 0;
    GM_GRID_STRIDE_LOOP(e, rows * cols) {
        const gm_i64 r = e / cols, c = e % cols;  // one division per row of C scores
        const gm_i64 s_row = r * s_sr + c * s_sc;
        const gm_i64 t_row = r * t_sr + c * t_sc;
        const double wv = w ? gm_load(w, w_kind, r * w_sr + c * w_sc) : 1.0;
        if (!gm_isfinite(wv)) { ++bad_w; continue; }
        gm_i64 cls;
        if (target_one_hot) {
            bool finite;
            cls = class_match_argmax(target, t_kind, t_row, t_class_stride, n_classes, &finite);
            if (!finite) { ++bad_target; continue; }
        } else {
            const double id = gm_load(target, t_kind, t_row);
            if (!(id >= 0.0 && id < (double)n_classes && id == floor(id))) { ++bad_target; continue; }
            cls = (gm_i64)id;
        }
        bool hit = false, finite = true;
        if (mode == MODE_ARGMAX) {
            hit = class_match_argmax(scores, s_kind, s_row, class_stride, n_classes, &finite) == cls;
        } else if (mode == MODE_TOP_K) {
            const double mine = gm_load(scores, s_kind, s_row + cls * class_stride);
            gm_i64 greater = 0;
            for (gm_i64 j = 0; j < n_classes; ++j) {
                const double v = gm_load(scores, s_kind, s_row + j * class_stride);
                finite = finite && gm_isfinite(v);
                greater += v > mine;
            }
            hit = greater < k;
        } else {  // MODE_SORTED_IDS: the first k entries are class ids
            for (gm_i64 j = 0; j < k; ++j) {
                const double v = gm_load(scores, s_kind, s_row + j * class_stride);
                finite = finite && gm_isfinite(v);
                hit = hit || v == (double)cls;
            }
        }
        if (!finite) { ++bad_scores; continue; }
        sum_wm += hit ? wv : 0.0;
        sum_w += wv;
    }
    if (bad_scores) atomicAdd(&invalid[0], (gm_u64)bad_scores);
    if (bad_target) atomicAdd(&invalid[1], (gm_u64)bad_target);
    if (bad_w) atomicAdd(&invalid[2], (gm_u64)bad_w);
    sum_wm = gm_block_sum(sum_wm, partial);
    sum_w = gm_block_sum(sum_w, partial);
    if (threadIdx.x == 0) {
        atomicAdd(total, scale * sum_wm);
        atomicAdd(count, scale * sum_w);
    }
}
