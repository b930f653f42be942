"""rms_norm, fused_add_rms_norm and rotary_embedding bandwidth: the compiled op beside the
plain-PyTorch reference, each as a share of the device-to-device copy bandwidth measured in the
same run. Bytes counted: every tensor read and written once (weights and the cos/sin rows too).

    python benchmarks/kernels/benchmark_rms_norm_rotary.py            # on the GPU machine
"""
import argparse

import torch

from bandwidth import copy_bandwidth_gbs, print_table, time_us
from inference_engine.ops import _compiled
from inference_engine.ops._dispatch import has_compiled
from inference_engine.ops.layernorm import fused_add_rms_norm_ref, rms_norm_ref
from inference_engine.ops.rotary import rotary_embedding_ref

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-tokens", type=int, nargs="+", default=[1, 16, 256, 4096, 16384])
    p.add_argument("--hidden-size", type=int, default=4096)
    p.add_argument("--num-heads", type=int, default=32)
    p.add_argument("--num-kv-heads", type=int, default=8)
    p.add_argument("--head-size", type=int, default=128)
    p.add_argument("--dtype", choices=DTYPES, default="bf16")
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--device", default="cuda")
    return p.parse_args()


def cases(args, tokens: int):
    """(op name, bytes moved, {backend: zero-argument callable}) for each op at this size."""
    dtype, device = DTYPES[args.dtype], args.device
    element = torch.tensor([], dtype=dtype).element_size()
    x = torch.randn(tokens, args.hidden_size, dtype=dtype, device=device)
    residual = torch.randn_like(x)
    weight = torch.randn(args.hidden_size, dtype=dtype, device=device)
    row_bytes = x.numel() * element
    yield "rms_norm", 2 * row_bytes, {
        "compiled": lambda: _compiled.rms_norm(x, weight, 1e-6),
        "torch ref": lambda: rms_norm_ref(x, weight, 1e-6)}
    yield "fused_add_rms_norm", 4 * row_bytes, {
        "compiled": lambda: _compiled.fused_add_rms_norm(x, residual, weight, 1e-6),
        "torch ref": lambda: fused_add_rms_norm_ref(x, residual, weight, 1e-6)}

    q_size, kv_size = args.num_heads * args.head_size, args.num_kv_heads * args.head_size
    qkv = torch.randn(tokens, q_size + 2 * kv_size, dtype=dtype, device=device)
    query, key, _ = qkv.split([q_size, kv_size, kv_size], dim=-1)
    cos_sin = torch.randn(8192, args.head_size, dtype=torch.float32, device=device)
    positions = torch.randint(0, 8192, (tokens,), device=device)
    rope_bytes = 2 * (q_size + kv_size) * tokens * element + tokens * args.head_size * 4
    yield "rotary_embedding", rope_bytes, {
        "compiled": lambda: _compiled.rotary_embedding(positions, query, key, args.head_size, cos_sin, True),
        "torch ref": lambda: rotary_embedding_ref(positions, query, key, args.head_size, cos_sin, True)}


def main() -> None:
    args = parse_args()
    device_type = torch.device(args.device).type
    copy_gbs = copy_bandwidth_gbs(args.device)
    rows = []
    for tokens in args.num_tokens:
        for op, nbytes, fns in cases(args, tokens):
            for backend, fn in fns.items():
                if backend == "compiled" and not has_compiled(op, device_type):
                    continue
                us = time_us(fn, args.device, args.iters)
                gbs = nbytes / us / 1e3
                rows.append([op, tokens, backend, us, gbs, 100 * gbs / copy_gbs])
    print(f"\ndevice: {torch.cuda.get_device_name() if device_type == 'cuda' else args.device}; "
          f"copy bandwidth {copy_gbs:.0f} GB/s; hidden {args.hidden_size}, {args.num_heads}/"
          f"{args.num_kv_heads} heads of {args.head_size}, {args.dtype}")
    print_table(["op", "tokens", "backend", "time us", "GB/s", "% of copy"], rows)


if __name__ == "__main__":
    main()
