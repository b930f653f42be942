// The one place that tells CUDA from ROCm (HIP): every `#ifdef USE_ROCM` of the project is here.
//
// GPU kernel files include only this header and the CUDA runtime API (which PyTorch's hipify
// rewrites for HIP); they see one set of names on both platforms: WARP_SIZE, shfl_xor, the packed
// half2 FMA, the fp16/bf16 storage types and their float conversions, a launch-bounds macro and
// the dynamic shared-memory opt-in.
#pragma once

#include <cstdint>

#ifdef USE_ROCM
#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>
#if __has_include(<hip/hip_bf16.h>)
#include <hip/hip_bf16.h>
#define IE_HIP_BF16 1
#else  // ROCm before 6.0 (Debian's 5.2 among them) has only hip_bfloat16
#include <hip/hip_bfloat16.h>
#endif
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#endif

namespace ie::gpu {

using fp16_t = __half;

#ifdef USE_ROCM
constexpr int WARP_SIZE = 64;  // a CDNA wavefront
#ifdef IE_HIP_BF16
using bf16_t = __hip_bfloat16;
__device__ __forceinline__ float to_float(bf16_t x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16_t to_bf16(float x) { return __float2bfloat16(x); }
#else
using bf16_t = hip_bfloat16;
__device__ __forceinline__ float to_float(bf16_t x) { return static_cast<float>(x); }
__device__ __forceinline__ bf16_t to_bf16(float x) { return bf16_t(x); }  // round to nearest even
#endif
#else
constexpr int WARP_SIZE = 32;
using bf16_t = __nv_bfloat16;
__device__ __forceinline__ float to_float(bf16_t x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16_t to_bf16(float x) { return __float2bfloat16_rn(x); }
#endif

// FP8 (e4m3, finite: torch.float8_e4m3fn) KV-cache storage, CUDA only: ROCm's FP8 types differ by
// version and chip (e4m3fnuz on MI300), so there IE_HAS_FP8 is 0 and an FP8 cache is refused.
// Stores round to nearest and saturate at +-448; loads convert two values to fp16 in one step
// (one instruction on sm_89+, emulated before).
#ifdef USE_ROCM
#define IE_HAS_FP8 0
#else
#define IE_HAS_FP8 1
using fp8_t = __nv_fp8_e4m3;
__device__ __forceinline__ float to_float(fp8_t x) { return static_cast<float>(x); }
__device__ __forceinline__ fp8_t to_fp8(float x) { return fp8_t(x); }  // saturating
// The pair in the low (HIGH = false) or high 16 bits of `word`. On sm_89+ the conversion reads the
// half in place (the library's 16-bit argument costs a shift for the high one).
template <bool HIGH>
__device__ __forceinline__ uint32_t fp8x2_to_half2(uint32_t word) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  uint32_t halves;
  if constexpr (HIGH)
    asm("{.reg .b16 l, h;\n mov.b32 {l, h}, %1;\n cvt.rn.f16x2.e4m3x2 %0, h;}"
        : "=r"(halves) : "r"(word));
  else
    asm("{.reg .b16 l, h;\n mov.b32 {l, h}, %1;\n cvt.rn.f16x2.e4m3x2 %0, l;}"
        : "=r"(halves) : "r"(word));
  return halves;
#else
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(
      static_cast<__nv_fp8x2_storage_t>(HIGH ? word >> 16 : word & 0xffffu), __NV_E4M3);
  return static_cast<uint32_t>(h.x) | (static_cast<uint32_t>(h.y) << 16);
#endif
}
#endif

// Butterfly exchange within a warp (all lanes take part). HIP's __shfl_xor covers the 64-lane
// wavefront; CUDA needs the _sync form with a full mask.
template <typename T>
__device__ __forceinline__ T shfl_xor(T value, int lane_mask) {
#ifdef USE_ROCM
  return __shfl_xor(value, lane_mask);
#else
  return __shfl_xor_sync(0xffffffffu, value, lane_mask);
#endif
}

// d = a * b + c on two packed fp16 lanes, one instruction on both vendors.
__device__ __forceinline__ uint32_t fma_f16x2(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
#ifdef USE_ROCM
  asm volatile("v_pk_fma_f16 %0, %1, %2, %3" : "=v"(d) : "v"(a), "v"(b), "v"(c));
#else
  asm volatile("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
#endif
  return d;
}

// Reads `value` from lane `src_lane` of the warp (all lanes take part).
template <typename T>
__device__ __forceinline__ T shfl_from(T value, int src_lane) {
#ifdef USE_ROCM
  return __shfl(value, src_lane);
#else
  return __shfl_sync(0xffffffffu, value, src_lane);
#endif
}

// Warp-wide matrix multiply-add on the tensor cores, d += a * b for one 16x8x16 tile: `a` 16x16
// (row-major fragment, four registers of two 16-bit values), `b` 16x8 (column-major, two),
// `d` 16x8 in float32 (four), in the lane layout of PTX's mma.m16n8k16. CUDA on sm_80 and later
// only: ROCm's matrix cores take other shapes and layouts (MFMA), so there IE_WARP_MMA is 0 and
// the kernels that would use it keep their CUDA-core versions.
#ifdef USE_ROCM
#define IE_WARP_MMA 0
inline bool warp_mma_supported() { return false; }
#else
#define IE_WARP_MMA 1
inline bool warp_mma_supported() {
  int device = 0, major = 0;
  (void)cudaGetDevice(&device);
  (void)cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  return major >= 8;
}

template <typename T>
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4],
                                            const uint32_t (&b)[2]);

#define IE_MMA_16X8X16(TYPE, PTX_TYPE)                                                          \
  template <>                                                                                   \
  __device__ __forceinline__ void mma_16x8x16<TYPE>(float (&d)[4], const uint32_t (&a)[4],      \
                                                    const uint32_t (&b)[2]) {                   \
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." PTX_TYPE "." PTX_TYPE ".f32 "        \
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"               \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                               \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));           \
  }
IE_MMA_16X8X16(fp16_t, "f16")
IE_MMA_16X8X16(bf16_t, "bf16")
#undef IE_MMA_16X8X16

// Asynchronous 16-byte copy from global to shared memory (sm_80+); `bytes` 0 writes zeros and
// reads nothing. A thread's copies complete in commit groups: cp_async_wait<N>() returns once
// at most N of its groups are still in flight (the "memory" clobbers keep shared-memory reads
// on their side of it).
__device__ __forceinline__ void cp_async16(unsigned shared_addr, const void* global, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
               :: "r"(shared_addr), "l"(global), "r"(bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory");
}

// Four 8x8 tiles of 16-bit values from shared memory into mma fragments: lanes 8m to 8m + 7
// give the row addresses of tile m, and lane l receives (row l / 4, columns 2 (l % 4) and
// 2 (l % 4) + 1) of each tile (of its transpose with `_trans`).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], unsigned shared_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_addr) : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], unsigned shared_addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_addr) : "memory");
}
#endif

// Lets `kernel` use more than the default 48 KiB of dynamic shared memory; true on success.
template <typename Kernel>
bool allow_dynamic_shared_memory(Kernel kernel, int bytes) {
#ifdef USE_ROCM
  return hipFuncSetAttribute(reinterpret_cast<const void*>(kernel),
                             hipFuncAttributeMaxDynamicSharedMemorySize, bytes) == hipSuccess;
#else
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) == cudaSuccess;
#endif
}

// The most dynamic shared memory one block of the current device may use, in bytes.
inline int max_dynamic_shared_memory() {
  int device = 0, bytes = 0;
#ifdef USE_ROCM
  (void)hipGetDevice(&device);
  (void)hipDeviceGetAttribute(&bytes, hipDeviceAttributeMaxSharedMemoryPerBlock, device);
#else
  (void)cudaGetDevice(&device);
  (void)cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
#endif
  return bytes;
}

}  // namespace ie::gpu

// Caps the registers per thread so that a block of `threads` always fits on one multiprocessor
// (both compilers take the CUDA spelling; kernels use this name so that a vendor-specific
// occupancy hint would go here).
#define IE_LAUNCH_BOUNDS(threads) __launch_bounds__(threads)

// ... and also so that `blocks` blocks fit on one multiprocessor at once, for memory-bound kernels
// whose loads in flight grow with the blocks resident. HIP reads a second argument as waves per
// execution unit, another measure: ROCm keeps the compiler's own choice.
#ifdef USE_ROCM
#define IE_LAUNCH_BOUNDS_RESIDENT(threads, blocks) __launch_bounds__(threads)
#else
#define IE_LAUNCH_BOUNDS_RESIDENT(threads, blocks) __launch_bounds__(threads, blocks)
#endif
