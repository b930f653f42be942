// Storage-type helpers shared by the GPU kernels: float conversion and 16-byte vectors.
#pragma once

#include "../platform.h"
#include "launchers.h"

namespace ie::gpu {

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(fp16_t x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ fp16_t from_float<fp16_t>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ bf16_t from_float<bf16_t>(float x) { return to_bf16(x); }
#if IE_HAS_FP8
template <>
__device__ __forceinline__ fp8_t from_float<fp8_t>(float x) { return to_fp8(x); }
#endif

// Elements of T in one 16-byte load, the unit of the bandwidth-bound kernels.
template <typename T>
constexpr int kVec = 16 / sizeof(T);

// Unpacks the kVec<T> values of a 16-byte vector to float.
template <typename T>
__device__ __forceinline__ void unpack(const uint4& v, float* out);

template <>
__device__ __forceinline__ void unpack<float>(const uint4& v, float* out) {
  out[0] = __uint_as_float(v.x);
  out[1] = __uint_as_float(v.y);
  out[2] = __uint_as_float(v.z);
  out[3] = __uint_as_float(v.w);
}

// bf16 is the high half of a float32: widening is a shift.
template <>
__device__ __forceinline__ void unpack<bf16_t>(const uint4& v, float* out) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(words[i] << 16);
    out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
}

template <>
__device__ __forceinline__ void unpack<fp16_t>(const uint4& v, float* out) {
  const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&words[i]));
    out[2 * i] = f.x;
    out[2 * i + 1] = f.y;
  }
}

// Packs kVec<T> floats into a 16-byte vector of T.
template <typename T>
__device__ __forceinline__ uint4 pack(const float* in) {
  uint4 v;
  T* elems = reinterpret_cast<T*>(&v);
#pragma unroll
  for (int i = 0; i < kVec<T>; ++i) elems[i] = from_float<T>(in[i]);
  return v;
}

// Reduces `value` over the block with `op`; `scratch` holds one float per warp. Every thread gets the result.
template <int NUM_THREADS, typename Op>
__device__ __forceinline__ float block_reduce(float value, float* scratch, Op op) {
  constexpr int kWarps = NUM_THREADS / WARP_SIZE;
#pragma unroll
  for (int mask = WARP_SIZE / 2; mask > 0; mask /= 2) value = op(value, shfl_xor(value, mask));
  const int warp = threadIdx.x / WARP_SIZE, lane = threadIdx.x % WARP_SIZE;
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  value = scratch[0];
#pragma unroll
  for (int w = 1; w < kWarps; ++w) value = op(value, scratch[w]);
  __syncthreads();  // scratch may be reused right after
  return value;
}

struct Sum {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

}  // namespace ie::gpu

namespace ie::gpu {

// Loads N consecutive values as float: 16-byte loads when N is a multiple of kVec<T> (the pointer
// must then be 16-byte aligned), scalar loads otherwise.
template <typename T, int N>
__device__ __forceinline__ void load_floats(const T* ptr, float* out) {
  if constexpr (N % kVec<T> == 0) {
#pragma unroll
    for (int v = 0; v < N / kVec<T>; ++v) {
      unpack<T>(reinterpret_cast<const uint4*>(ptr)[v], out + v * kVec<T>);
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = to_float(ptr[i]);
  }
}

template <typename T, int N>
__device__ __forceinline__ void store_floats(T* ptr, const float* in) {
  if constexpr (N % kVec<T> == 0) {
#pragma unroll
    for (int v = 0; v < N / kVec<T>; ++v) {
      reinterpret_cast<uint4*>(ptr)[v] = pack<T>(in + v * kVec<T>);
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) ptr[i] = from_float<T>(in[i]);
  }
}

}  // namespace ie::gpu

namespace ie::gpu {

// Calls fn(T{}) with T the storage type named by dtype.
template <typename Fn>
void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32: fn(float{}); break;
    case DType::kFloat16: fn(fp16_t{}); break;
    case DType::kBFloat16: fn(bf16_t{}); break;
  }
}

}  // namespace ie::gpu
