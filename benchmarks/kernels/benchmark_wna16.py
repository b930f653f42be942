"""The W4A16 / W8A16 product against the 16-bit one on Llama-3-8B's linear shapes.

For each shape and row count, times (GPU: inside a CUDA graph, rotating over enough weight copies
that they never sit in L2; CPU: wall clock) the dense bf16 matmul (cuBLAS, or torch on the CPU)
and the integer-weight linear as a layer runs it (wna16.py: our packed kernel up to 16 rows, then
Triton's up to 256 on a GPU, the dequantized weight's dense matmul beyond), and reports the speed-up over bf16 and the packed
bytes (weights, scales, zeros) read per second against the card's copy bandwidth. The last rows
add one decode step's matmuls (32 layers and the unquantized LM head).

    python benchmarks/kernels/benchmark_wna16.py                  # GPU
    python benchmarks/kernels/benchmark_wna16.py --device cpu --rows 1 4 --calls 3
    python benchmarks/kernels/benchmark_wna16.py --lut            # SqueezeLLM's look-ups
"""
import argparse
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from bandwidth import copy_bandwidth_gbs, graph_time_us, print_table, time_us
from inference_engine.model_executor.layers.quantization.squeezellm import SqueezeLLMLinearMethod
from inference_engine.model_executor.layers.quantization.wna16 import WNA16Method
from inference_engine.ops.quantized_linear import pack_int32

# (name, out_features, in_features, per layer): Llama-3-8B, one GPU rank; the LM head stays bf16.
SHAPES = [("qkv", 6144, 4096, True), ("o", 4096, 4096, True), ("gate_up", 28672, 4096, True),
          ("down", 4096, 14336, True)]
LAYERS = 32


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--rows", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64, 128, 256, 512])
    p.add_argument("--bits", type=int, default=4, choices=[4, 8])
    p.add_argument("--group-size", type=int, default=128)
    p.add_argument("--lut", action="store_true",
                   help="SqueezeLLM's look-up weights (4-bit indices, a table per output)")
    p.add_argument("--min-bytes", type=float, default=512e6,
                   help="GPU: bf16 weight copies rotated through per shape, at least this many "
                        "bytes")
    p.add_argument("--calls", type=int, default=8, help="calls per timing (GPU: in one graph)")
    return p.parse_args()


def packed_layer(n: int, k: int, bits: int, group_size: int, device: str):
    """A layer's integer weights in the kernels' layout, random, as WNA16Method.apply reads them."""
    groups = k // group_size
    q = torch.randint(0, 1 << bits, (n, k), device=device, dtype=torch.uint8)
    return SimpleNamespace(
        qweight=pack_int32(q, bits, 1),
        scales=(torch.rand(n, groups, device=device) * 0.01).to(torch.bfloat16),
        zeros=torch.full((n, groups), 1 << (bits - 1), device=device, dtype=torch.bfloat16),
        input_order=None, group_index=None, group_size=group_size)


def lut_layer(n: int, k: int, device: str):
    """A SqueezeLLM layer as SqueezeLLMLinearMethod.apply reads it once loaded, random."""
    q = torch.randint(0, 16, (n, k), device=device, dtype=torch.uint8)
    return SimpleNamespace(qweight=pack_int32(q, 4, 1),
                           lookup_table=(torch.randn(n, 16, device=device) * 0.01).to(torch.bfloat16))


def timer(args, copies: int):
    if args.device == "cuda":
        return lambda fn: graph_time_us(fn, calls=args.calls * copies)
    return lambda fn: time_us(fn, "cpu", iters=args.calls, warmup=1)


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    copy_gbs = copy_bandwidth_gbs(args.device, size_mib=256 if args.device == "cpu" else 1024)
    if args.lut:
        method, args.bits, args.group_size = SqueezeLLMLinearMethod(), 4, None
    else:
        method = WNA16Method()
        method.bits = args.bits
    rows, step_us = [], {}
    for name, n, k, per_layer in SHAPES:
        copies = 1 if args.device == "cpu" else max(1, int(-(-args.min_bytes // (n * k * 2))))
        dense = [torch.randn(n, k, dtype=torch.bfloat16, device=args.device) * 0.01
                 for _ in range(copies)]
        layers = [lut_layer(n, k, args.device) if args.lut
                  else packed_layer(n, k, args.bits, args.group_size, args.device)
                  for _ in range(copies)]
        packed_bytes = n * k * args.bits // 8 + (
            n * 16 * 2 if args.lut else 2 * n * (k // args.group_size) * 2)
        time_it = timer(args, copies)
        for m in args.rows:
            x = torch.randn(m, k, dtype=torch.bfloat16, device=args.device)
            turn = iter(range(10**9))
            bf16_us = time_it(lambda: F.linear(x, dense[next(turn) % copies]))
            ours_us = time_it(lambda: method.apply(layers[next(turn) % copies], x, None))
            gbs = packed_bytes / ours_us / 1e3
            rows.append([name, f"{n}x{k}", m, bf16_us, ours_us, bf16_us / ours_us, gbs,
                         100 * gbs / copy_gbs])
            weight = LAYERS if per_layer else 1
            step = step_us.setdefault(m, [0.0, 0.0])
            step[0] += bf16_us * weight
            step[1] += ours_us * weight
        dense = layers = None  # (freed before the next shape)
        if args.device == "cuda":
            torch.cuda.empty_cache()
    for m, (bf16_us, ours_us) in step_us.items():
        rows.append(["32 layers", "", m, bf16_us, ours_us, bf16_us / ours_us, "", ""])
    what = "SqueezeLLM look-up" if args.lut else f"W{args.bits}A16, groups of {args.group_size}"
    print(f"{what}, {args.device}; copy bandwidth {copy_gbs:.0f} GB/s")
    print_table(["shape", "n x k", "rows", "bf16 us", "look-up us" if args.lut else f"W{args.bits}A16 us", "speed-up",
                 "packed GB/s", "% of copy"], rows)


if __name__ == "__main__":
    main()
