// state_commit: add one batch's scratch to a metric's state, only if the batch held no invalid value.
//
// Every update accumulates into a scratch copy of the state plus invalid-value counters (one per reason).
// This kernel is the commit: if all counters are 0 it adds the scratch to the state, otherwise it leaves the
// state as it was and adds the counters to the sticky `rejected` vector that result() reports. One launch
// covers both state buffers (int64 counts, float64 sums), so no host synchronisation is needed.
#include "gm_common.cuh"

extern "C" __global__ void state_commit(gm_i64* state_int, const gm_i64* scratch_int, gm_i64 n_int,
                                        double* state_float, const double* scratch_float, gm_i64 n_float,
                                        const gm_u64* invalid, int n_reasons, gm_u64* rejected) {
    gm_u64 bad = 0;
    for (int r = 0; r < n_reasons; ++r) bad |= invalid[r];  // every thread reads the few counters
    if (bad) {
        if (blockIdx.x == 0 && threadIdx.x < (unsigned)n_reasons) rejected[threadIdx.x] += invalid[threadIdx.x];
        return;
    }
    GM_GRID_STRIDE_LOOP(i, n_int) state_int[i] += scratch_int[i];
    GM_GRID_STRIDE_LOOP(i, n_float) state_float[i] += scratch_float[i];
}
