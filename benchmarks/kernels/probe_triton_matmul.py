"""Could a weight-streaming Triton matmul beat cuBLASLt for 9-192 rows (the mid-run decode steps)?

cuBLASLt reads Llama-3-8B's weights at 67-92 % of an H100's copy bandwidth at 16-192 rows
(o_proj 4096x4096 at 16 rows: 67 %), where the few-row kernel reaches 91 % at 1-8 rows. This
probe times, per shape and row count, F.linear through cuBLASLt against a plain Triton kernel
over a few hand-picked tile configurations (the best one shown), in CUDA graphs, weights rotated
so that they never sit in L2. Each Triton program owns BLOCK_N output features and all rows and
streams its weights once; SPLIT_K > 1 splits the reduction over programs, adding fp32 partials
atomically into a zeroed buffer (its zeroing and the cast back are timed with it). SWAP computes
W x^T (features as the mma's M: 64-wide tiles on the tensor cores with only 16 rows).

    python benchmarks/kernels/probe_triton_matmul.py --rows 16 32 64 128
"""
import argparse

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from bandwidth import copy_bandwidth_gbs, graph_time_us, print_table
from benchmark_skinny_matmul import LAYERS, SHAPES


@triton.jit
def weight_stream_matmul_kernel(x_ptr, w_ptr, out_ptr, acc_ptr, M, N, K, stride_xm, stride_om,
                                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                                BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr,
                                SWAP: tl.constexpr):
    pid_n, pid_k = tl.program_id(0), tl.program_id(1)
    rows = tl.arange(0, BLOCK_M)
    feats = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = tl.arange(0, BLOCK_K)
    k_len = K // SPLIT_K
    x_ptrs = x_ptr + rows[:, None] * stride_xm + (pid_k * k_len + cols)[None, :]
    w_ptrs = w_ptr + feats[:, None] * K + (pid_k * k_len + cols)[None, :]
    row_ok = rows[:, None] < M
    if SWAP:
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for _ in range(0, k_len, BLOCK_K):
        x = tl.load(x_ptrs, mask=row_ok, other=0.0)
        w = tl.load(w_ptrs)
        if SWAP:
            acc = tl.dot(w, tl.trans(x), acc)
        else:
            acc = tl.dot(x, tl.trans(w), acc)
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    if SWAP:
        acc = tl.trans(acc)
    mask = row_ok & (feats[None, :] < N)
    if SPLIT_K == 1:
        tl.store(out_ptr + rows[:, None] * stride_om + feats[None, :],
                 acc.to(out_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(acc_ptr + rows[:, None] * N + feats[None, :], acc, mask=mask)


# (SWAP, BLOCK_N, BLOCK_K, SPLIT_K, num_stages): split picked per shape below when None.
# Each program reads all of x, rows / BLOCK_N times as many bytes as its weights: wider tiles for
# more rows, split over K to keep every SM busy.
CONFIGS = [(False, 32, 128, 1, 4), (False, 32, 256, 1, 3), (False, 64, 128, None, 4),
           (False, 128, 128, None, 3), (True, 64, 128, None, 4), (True, 64, 256, None, 3),
           (True, 128, 128, None, 4), (True, 128, 64, None, 6)]


def split_for(n: int, k: int, block_n: int, block_k: int, programs: int) -> int:
    """The fewest splits (1, 2, 4, 8) that give at least `programs` programs."""
    for split in (1, 2, 4, 8):
        if (n // block_n) * split >= programs or k // split < 2 * block_k:
            return split
    return 8


def weight_stream_matmul(x: torch.Tensor, w: torch.Tensor, config, programs: int) -> torch.Tensor:
    swap, block_n, block_k, split, stages = config
    m, k = x.shape
    n = w.shape[0]
    split = split or split_for(n, k, block_n, block_k, programs)
    assert k % (split * block_k) == 0 and n % block_n == 0
    block_m = max(16, triton.next_power_of_2(m))
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    acc = torch.zeros(m, n, dtype=torch.float32, device=x.device) if split > 1 else out
    weight_stream_matmul_kernel[(n // block_n, split)](
        x, w, out, acc, m, n, k, x.stride(0), out.stride(0), BLOCK_M=block_m, BLOCK_N=block_n,
        BLOCK_K=block_k, SPLIT_K=split, SWAP=swap, num_warps=4, num_stages=stages)
    return acc.to(x.dtype) if split > 1 else out


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=[16, 32, 64, 128])
    p.add_argument("--min-bytes", type=float, default=512e6,
                   help="weight copies rotated through per shape: at least this many bytes")
    p.add_argument("--calls", type=int, default=4, help="calls per weight copy in one graph")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    torch.backends.cuda.preferred_blas_library("cublaslt")
    copy_gbs = copy_bandwidth_gbs("cuda")
    programs = 2 * torch.cuda.get_device_properties(0).multi_processor_count
    table, step_us = [], {}
    for name, n, k, per_layer in SHAPES[:4]:  # the layers' four; the LM head is never mid-rows
        copies = max(1, int(-(-args.min_bytes // (n * k * 2))))
        weights = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") / k**0.5
                   for _ in range(copies)]
        for m in args.rows:
            x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
            ref = F.linear(x, weights[0]).float()
            turn = iter(range(10**9))
            results = [("cublaslt", graph_time_us(lambda: F.linear(x, weights[next(turn) % copies]),
                                                  calls=args.calls * copies))]
            for config in CONFIGS:
                if k % (config[2] * (config[3] or 1)) or n % config[1]:
                    continue
                try:
                    error = (weight_stream_matmul(x, weights[0], config, programs).float()
                             - ref).abs().max()
                except triton.runtime.errors.OutOfResources:  # shared memory, at many rows
                    continue
                if error > 0.05 * ref.abs().max():
                    raise SystemExit(f"{name} rows {m} config {config}: max error {error:.3g}")
                us = graph_time_us(lambda: weight_stream_matmul(
                    x, weights[next(turn) % copies], config, programs), calls=args.calls * copies)
                results.append((str(config), us))
            best = min(results[1:], key=lambda r: r[1])
            for kernel, us in (results[0], best):
                gbs = n * k * 2 / us / 1e3
                table.append([name, m, kernel, us, 100 * gbs / copy_gbs])
                step_us[m, kernel == "cublaslt"] = step_us.get((m, kernel == "cublaslt"), 0.0) + us * LAYERS
        del weights
        torch.cuda.empty_cache()
    layer_bytes = sum(n * k * 2 for _, n, k, _ in SHAPES[:4]) * LAYERS
    for (m, library), us in sorted(step_us.items()):
        table.append([f"{LAYERS} layers", m, "cublaslt" if library else "triton (best each)", us,
                      100 * layer_bytes / us / 1e3 / copy_gbs])
    print(f"\ndevice: {torch.cuda.get_device_name()}; copy bandwidth {copy_gbs:.0f} GB/s; bf16; "
          f"configs (swap, block_n, block_k, split_k, stages)")
    print_table(["matmul", "rows", "kernel", "time us", "% of copy"], table)


if __name__ == "__main__":
    main()
