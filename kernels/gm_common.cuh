// gm_common.cuh: what every gpumetrics kernel shares. Included by the loader (gpumetrics/_cuda/_loader.py),
// which pastes this text in place, so NVRTC, nvcc and the CPU emulation all read one self-contained source.
//
// No CUDA headers: 16-bit floats arrive as raw 16-bit words (tags gm_half / gm_bfloat16) and are widened
// in registers with exact integer arithmetic, the same routine as gpumetrics/_cpu/_common.py.
#pragma once

typedef long long gm_i64;
typedef unsigned long long gm_u64;

struct gm_half { unsigned short bits; };
struct gm_bfloat16 { unsigned short bits; };

__device__ __forceinline__ float gm_bits_to_float(unsigned int bits) {
    union { unsigned int u; float f; } v;
    v.u = bits;
    return v.f;
}

// IEEE binary16 -> binary32, exact for all 65536 patterns (subnormals, infinities, NaN payloads).
__device__ __forceinline__ float gm_half_to_float(unsigned short h) {
    unsigned int sign = (unsigned int)(h & 0x8000u) << 16;
    unsigned int exp = (h >> 10) & 0x1fu;
    unsigned int man = h & 0x3ffu;
    if (exp == 0x1fu) return gm_bits_to_float(sign | 0x7f800000u | (man << 13));
    if (exp == 0u) {
        if (man == 0u) return gm_bits_to_float(sign);
        // subnormal: value = man * 2^-24, exact in float32
        float f = (float)man * 5.9604644775390625e-08f;
        return sign ? -f : f;
    }
    return gm_bits_to_float(sign | ((exp + 112u) << 23) | (man << 13));
}

// Element loaders: read one element of any supported storage type as float / double.
__device__ __forceinline__ float gm_to_float(float v) { return v; }
__device__ __forceinline__ float gm_to_float(double v) { return (float)v; }
__device__ __forceinline__ float gm_to_float(gm_half v) { return gm_half_to_float(v.bits); }
__device__ __forceinline__ float gm_to_float(gm_bfloat16 v) { return gm_bits_to_float((unsigned int)v.bits << 16); }
template <typename T> __device__ __forceinline__ float gm_to_float(T v) { return (float)v; }

__device__ __forceinline__ double gm_to_double(double v) { return v; }
__device__ __forceinline__ double gm_to_double(gm_half v) { return (double)gm_half_to_float(v.bits); }
__device__ __forceinline__ double gm_to_double(gm_bfloat16 v) { return (double)gm_bits_to_float((unsigned int)v.bits << 16); }
template <typename T> __device__ __forceinline__ double gm_to_double(T v) { return (double)v; }

__device__ __forceinline__ bool gm_isnan(double v) { return v != v; }
__device__ __forceinline__ bool gm_isfinite(double v) { return v == v && v - v == 0.0; }

// Grid-stride loop bounds for a 64-bit element count.
#define GM_GRID_STRIDE_LOOP(i, n) \
    for (gm_i64 i = (gm_i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (gm_i64)blockDim.x * gridDim.x)

// Runtime element kinds (gpumetrics/_dtypes.py KIND_CODE): for kernels whose inputs take many dtypes and whose
// cost is the memory read, one launch-uniform switch replaces a template instantiation per dtype pair.
enum gm_kind {
    GM_BOOL = 0, GM_U8 = 1, GM_I8 = 2, GM_I16 = 3, GM_U16 = 4, GM_I32 = 5, GM_U32 = 6, GM_I64 = 7, GM_U64 = 8,
    GM_F16 = 9, GM_BF16 = 10, GM_F32 = 11, GM_F64 = 12
};

__device__ __forceinline__ double gm_load(const void* p, int kind, gm_i64 i) {
    switch (kind) {
        case GM_BOOL: return (double)(static_cast<const unsigned char*>(p)[i] != 0);
        case GM_U8: return (double)static_cast<const unsigned char*>(p)[i];
        case GM_I8: return (double)static_cast<const signed char*>(p)[i];
        case GM_I16: return (double)static_cast<const short*>(p)[i];
        case GM_U16: return (double)static_cast<const unsigned short*>(p)[i];
        case GM_I32: return (double)static_cast<const int*>(p)[i];
        case GM_U32: return (double)static_cast<const unsigned int*>(p)[i];
        case GM_I64: return (double)static_cast<const long long*>(p)[i];
        case GM_U64: return (double)static_cast<const unsigned long long*>(p)[i];
        case GM_F16: return (double)gm_half_to_float(static_cast<const unsigned short*>(p)[i]);
        case GM_BF16: return (double)gm_bits_to_float((unsigned int)static_cast<const unsigned short*>(p)[i] << 16);
        case GM_F32: return (double)static_cast<const float*>(p)[i];
        default: return static_cast<const double*>(p)[i];
    }
}

// Block-wide sum of one double per thread; the result is valid in thread 0. `shared` holds >= 32 doubles.
// Needs blockDim.x to be a multiple of 32 (the launchers' BLOCK constants are).
__device__ __forceinline__ double gm_block_sum(double v, double* shared) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    __syncthreads();  // `shared` may still be read by a previous call
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = 0.0;
    if (warp == 0) {
        v = lane < (blockDim.x >> 5) ? shared[lane] : 0.0;
        for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    }
    return v;
}
