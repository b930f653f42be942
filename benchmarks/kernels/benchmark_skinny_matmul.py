"""How fast the library matmul (torch -> cuBLAS) reads the weights when a step has few rows: the
tail of a run, where a handful of long requests decode and every step reads all the weights.

For each of Llama-3-8B's linear shapes and row counts, times F.linear inside a CUDA graph,
rotating over enough weight copies that they never sit in L2, and compares the weight bytes
read per second with the card's read bandwidth (a sum over a large tensor) and copy bandwidth.
The last rows add one decode step's matmuls (32 layers and the LM head) at each row count. Many
rows (a step's prompts) make the matmuls compute-bound: the TFLOP/s column tells those apart.
`--kernels cublas skinny` also times our few-row kernel (csrc/gpu/skinny_matmul_kernels.cu,
up to 8 rows) on the same weights; `cublaslt` is F.linear with torch's preferred BLAS library
set to cuBLASLt.

    python benchmarks/kernels/benchmark_skinny_matmul.py
"""
import argparse
import os

import torch
import torch.nn.functional as F

from bandwidth import copy_bandwidth_gbs, graph_time_us, print_table
from inference_engine import ops
from inference_engine.envs import SKINNY_MATMUL
from inference_engine.ops._compiled import SKINNY_MAX_ROWS

# (name, out_features, in_features, per layer): Llama-3-8B, one GPU rank.
SHAPES = [("qkv", 6144, 4096, True), ("o", 4096, 4096, True), ("gate_up", 28672, 4096, True),
          ("down", 4096, 14336, True), ("lm_head", 128256, 4096, False)]
LAYERS = 32


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64, 128, 192])
    p.add_argument("--min-bytes", type=float, default=512e6,
                   help="weight copies rotated through per shape: at least this many bytes")
    p.add_argument("--calls", type=int, default=8, help="calls captured in one graph")
    p.add_argument("--kernels", nargs="+", default=["cublas"],
                   choices=["cublas", "cublaslt", "skinny"],
                   help="cublas: F.linear; cublaslt: F.linear through cuBLASLt; skinny: ours "
                        "(up to 8 rows)")
    return p.parse_args()


def read_bandwidth_gbs(size_mib: int = 2048) -> float:
    """Bytes read per second by a float32-accumulated sum over a bf16 tensor (one read, no write)."""
    x = torch.randn(size_mib * 2**20 // 2, dtype=torch.bfloat16, device="cuda")
    us = graph_time_us(lambda: x.sum(dtype=torch.float32), calls=4)
    return x.numel() * 2 / us / 1e3


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    read_gbs, copy_gbs = read_bandwidth_gbs(), copy_bandwidth_gbs("cuda")
    os.environ.pop(SKINNY_MATMUL, None)  # on unless switched off
    kernels = {"cublas": F.linear, "cublaslt": F.linear, "skinny": ops.skinny_matmul}
    runs = [(kernel, m) for kernel in args.kernels for m in args.rows
            if kernel != "skinny" or m <= SKINNY_MAX_ROWS]
    rows, step_us = [], {run: 0.0 for run in runs}
    for name, n, k, per_layer in SHAPES:
        weight_bytes = n * k * 2
        copies = max(1, int(-(-args.min_bytes // weight_bytes)))
        weights = [torch.randn(n, k, dtype=torch.bfloat16, device="cuda") for _ in range(copies)]
        for kernel, m in runs:
            x = torch.randn(m, k, dtype=torch.bfloat16, device="cuda")
            turn, fn = iter(range(10**9)), kernels[kernel]
            library = "cublaslt" if kernel == "cublaslt" else "cublas"
            torch.backends.cuda.preferred_blas_library(library)  # taken when the graph is captured
            us = graph_time_us(lambda: fn(x, weights[next(turn) % copies]), calls=args.calls * copies)
            gbs = weight_bytes / us / 1e3
            rows.append([name, f"{n}x{k}", kernel, m, us, gbs, 100 * gbs / read_gbs,
                         100 * gbs / copy_gbs, 2 * m * n * k / us / 1e6])
            step_us[kernel, m] += us * (LAYERS if per_layer else 1)
        del weights
        torch.cuda.empty_cache()
    step_params = sum(n * k * (LAYERS if per_layer else 1) for _, n, k, per_layer in SHAPES)
    for (kernel, m), us in step_us.items():
        gbs = 2 * step_params / us / 1e3
        rows.append(["one step", f"{2 * step_params / 1e9:.1f} GB", kernel, m, us, gbs,
                     100 * gbs / read_gbs, 100 * gbs / copy_gbs, 2 * m * step_params / us / 1e6])
    print(f"\ndevice: {torch.cuda.get_device_name()}; read bandwidth {read_gbs:.0f} GB/s (sum), "
          f"copy bandwidth {copy_gbs:.0f} GB/s (read + write); bf16 weights, F.linear in graphs")
    print_table(["matmul", "weight", "kernel", "rows", "time us", "weight GB/s", "% of read",
                 "% of copy", "TFLOP/s"], rows)


if __name__ == "__main__":
    main()
