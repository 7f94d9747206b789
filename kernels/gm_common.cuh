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
