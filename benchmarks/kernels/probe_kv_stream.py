"""How fast can a decode-attention-shaped kernel stream the paged KV cache, by how it loads?

Only the loads of paged_attention_mma_kernel, no math: thread block (KV head, sequence), 4 warps
taking 16-token chunks in turn, K and V rows of 256 bytes each 2 KB apart (Llama-3-8B's 8 KV
heads of 128). The modes differ only in how a chunk reaches the warp:
  0 regs/mma: into registers as the mma kernel loads them (a K instruction covers 64 bytes of 8
    rows, a V instruction 128 bytes of 4 rows), one chunk in flight per warp;
  1 regs/lines: into registers, each instruction two whole rows (512 contiguous bytes);
  2, 3 cp.async: copied into shared memory with cp.async (two whole rows an instruction), 2 or
    3 chunks in flight per warp, then read back from shared memory.
Needs nvcc on the machine (torch.utils.cpp_extension.load_inline).

    python benchmarks/kernels/probe_kv_stream.py --cases 192x320 96x500 34x790
"""
import argparse

import torch
from torch.utils.cpp_extension import load_inline

from bandwidth import copy_bandwidth_gbs, print_table, random_paged_kv_cache, time_us

CUDA_SOURCE = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cstdint>

constexpr int kWarps = 4, kRowBytes = 256, kChunkBytes = 16 * kRowBytes;

__device__ __forceinline__ uint32_t fold(uint4 v) { return v.x ^ v.y ^ v.z ^ v.w; }
__device__ __forceinline__ uint4 ldg16(const char* p) {
  return __ldg(reinterpret_cast<const uint4*>(p));
}

template <int MODE, int STAGES>
__global__ void __launch_bounds__(128, 4) stream_kernel(
    const char* __restrict__ kc, const char* __restrict__ vc, const int* __restrict__ tables,
    int context, int max_blocks, int kv_heads, int block_size, uint32_t* __restrict__ out) {
  extern __shared__ uint4 smem[];
  const int kv = blockIdx.x, seq = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row_stride = int64_t(kv_heads) * kRowBytes, block_stride = row_stride * block_size;
  const int* table = tables + int64_t(seq) * max_blocks;
  const int chunks = (context + 15) / 16;
  const int mine = chunks > warp ? (chunks - warp - 1) / kWarps + 1 : 0;  // this warp's chunks
  int window = 0;  // lane l: the cache block of this warp's chunk (32 * k + l)
  auto base_of = [&](int i) {  // byte offset of this warp's chunk i (called with rising i)
    if (i % 32 == 0) {
      const int c = warp + (i + lane) * kWarps;
      window = c < chunks ? table[c * 16 / block_size] : 0;
    }
    const int t = (warp + i * kWarps) * 16;
    return int64_t(__shfl_sync(0xffffffffu, window, i % 32)) * block_stride +
           (t % block_size) * row_stride + kv * kRowBytes;
  };
  auto valid_of = [&](int i) { return context - (warp + i * kWarps) * 16; };
  uint32_t acc = 0;
  if constexpr (MODE <= 1) {
    for (int i = 0; i < mine; ++i) {
      const int64_t base = base_of(i);
      const int valid = valid_of(i);
      uint4 k[8], v[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        int krow, kbyte, vrow, vbyte;
        if (MODE == 0) {
          krow = lane / 4 + (j & 1) * 8, kbyte = ((j >> 1) * 4 + lane % 4) * 16;
          const int t = j >> 1, u = j & 1;
          vrow = 2 * (lane % 4) + (t & 1) + (t >> 1) * 8, vbyte = (u * 8 + lane / 4) * 16;
        } else {
          krow = vrow = lane / 16 + 2 * j, kbyte = vbyte = (lane % 16) * 16;
        }
        k[j] = krow < valid ? ldg16(kc + base + krow * row_stride + kbyte) : make_uint4(0, 0, 0, 0);
        v[j] = vrow < valid ? ldg16(vc + base + vrow * row_stride + vbyte) : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) acc ^= fold(k[j]) ^ fold(v[j]);
    }
  } else {
    uint4* ring = smem + warp * STAGES * (2 * kChunkBytes / 16);  // [STAGES][K, V][16 rows][16]
    auto issue = [&](int i) {  // chunk i into its stage; always a group, so counts stay aligned
      if (i < mine) {
        const int64_t base = base_of(i);
        const int valid = valid_of(i);
        uint4* dst = ring + (i % STAGES) * (2 * kChunkBytes / 16);
#pragma unroll
        for (int j = 0; j < 16; ++j) {  // j < 8: K rows, else V rows; two rows per instruction
          const int row = lane / 16 + 2 * (j % 8), vec = lane % 16;
          const char* src = (j < 8 ? kc : vc) + base + row * row_stride + vec * 16;
          const unsigned s = static_cast<unsigned>(
              __cvta_generic_to_shared(dst + (j / 8) * 256 + row * 16 + vec));
          asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                       :: "r"(s), "l"(src), "r"(row < valid ? 16 : 0));
        }
      }
      asm volatile("cp.async.commit_group;");
    };
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) issue(s);
    for (int i = 0; i < mine; ++i) {
      issue(i + STAGES - 1);
      asm volatile("cp.async.wait_group %0;" :: "n"(STAGES - 1));
      __syncwarp();
      const uint4* buf = ring + (i % STAGES) * (2 * kChunkBytes / 16);
#pragma unroll
      for (int j = 0; j < 16; ++j) acc ^= fold(buf[j * 32 + lane]);
      __syncwarp();
    }
  }
  out[(int64_t(seq) * gridDim.x + kv) * blockDim.x + threadIdx.x] = acc;
}

template <int MODE, int STAGES>
void launch(torch::Tensor k, torch::Tensor v, torch::Tensor tables, int64_t context, torch::Tensor out) {
  const int seqs = tables.size(0), kv_heads = k.size(2), block_size = k.size(1);
  const int smem = MODE <= 1 ? 0 : kWarps * STAGES * 2 * kChunkBytes;
  auto kernel = stream_kernel<MODE, STAGES>;
  if (smem > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  kernel<<<dim3(kv_heads, seqs), 128, smem, c10::cuda::getCurrentCUDAStream()>>>(
      static_cast<const char*>(k.data_ptr()), static_cast<const char*>(v.data_ptr()),
      tables.data_ptr<int>(), context, tables.size(1), kv_heads, block_size,
      reinterpret_cast<uint32_t*>(out.data_ptr<int>()));
}

void stream(torch::Tensor k, torch::Tensor v, torch::Tensor tables, int64_t context, torch::Tensor out,
            int64_t mode) {
  switch (mode) {
    case 0: return launch<0, 1>(k, v, tables, context, out);
    case 1: return launch<1, 1>(k, v, tables, context, out);
    case 2: return launch<2, 2>(k, v, tables, context, out);
    case 3: return launch<2, 3>(k, v, tables, context, out);
  }
}
"""

MODES = {0: "regs/mma", 1: "regs/lines", 2: "cp.async x2", 3: "cp.async x3"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=["192x320", "96x500", "34x790"], help="SEQUENCESxCONTEXT")
    p.add_argument("--modes", type=int, nargs="+", default=list(MODES))
    args = p.parse_args()
    arch = "".join(map(str, torch.cuda.get_device_capability()))  # cp.async: sm_80 and later
    ext = load_inline("probe_kv_stream", cpp_sources="void stream(torch::Tensor k, torch::Tensor v, "
                      "torch::Tensor tables, int64_t context, torch::Tensor out, int64_t mode);",
                      cuda_sources=CUDA_SOURCE, functions=["stream"],
                      extra_cuda_cflags=["-O3", f"-gencode=arch=compute_{arch},code=sm_{arch}"])
    torch.manual_seed(0)
    kv_heads, head_size, block_size = 8, 128, 16
    copy_gbs = copy_bandwidth_gbs("cuda")
    rows = []
    for case in args.cases:
        seqs, context = map(int, case.split("x"))
        k, v, tables = random_paged_kv_cache(seqs, context, kv_heads, head_size, block_size)
        out = torch.empty(seqs * kv_heads * 128, dtype=torch.int32, device="cuda")
        kv_bytes = 2 * seqs * context * kv_heads * head_size * 2
        for mode in args.modes:
            us = time_us(lambda: ext.stream(k, v, tables, context, out, mode), "cuda", iters=50)
            rows.append([case, MODES[mode], us, kv_bytes / us / 1e3, 100 * kv_bytes / us / 1e3 / copy_gbs])
    print(f"copy bandwidth {copy_gbs:.0f} GB/s")
    print_table(["case", "mode", "us", "KV GB/s", "% of copy"], rows)


if __name__ == "__main__":
    main()
