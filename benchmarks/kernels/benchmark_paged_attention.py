"""Decode paged-attention bandwidth: each backend's achieved memory bandwidth as a share of the
device-to-device copy bandwidth measured in the same run.

Backends: the compiled op (ops' v1/v2 choice, and v1 and v2 forced), the Triton fallback, the
plain-PyTorch reference (small cases only: it loops over sequences in Python) and torch SDPA on a
dense, contiguous cache of the same size. Bytes counted: K and V of every context token, plus the
query and output.

    python benchmarks/kernels/benchmark_paged_attention.py            # on the GPU machine
"""
import argparse
import math

import torch
import torch.nn.functional as F

from bandwidth import copy_bandwidth_gbs, print_table, random_paged_kv_cache, time_us
from inference_engine.ops import _compiled
from inference_engine.ops._dispatch import has_compiled, triton_available
from inference_engine.ops.attention import paged_attention_ref

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    p.add_argument("--context-lens", type=int, nargs="+", default=[128, 1024, 4096])
    p.add_argument("--num-heads", type=int, default=32)
    p.add_argument("--num-kv-heads", type=int, default=8)
    p.add_argument("--head-size", type=int, default=128)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--dtype", choices=DTYPES, default="bf16")
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--partition-sizes", type=int, nargs="*", default=[64, 128, 256],
                   help="also time v2 forced to each of these partition sizes")
    p.add_argument("--ref-max-tokens", type=int, default=16384,
                   help="run the torch reference only up to this many batch x context tokens")
    p.add_argument("--device", default="cuda")
    p.add_argument("--plot", help="save a bar chart of the shares of copy bandwidth to this file")
    return p.parse_args()


def make_inputs(args, batch: int, context: int):
    dtype, device = DTYPES[args.dtype], args.device
    key_cache, value_cache, block_tables = random_paged_kv_cache(
        batch, context, args.num_kv_heads, args.head_size, args.block_size, device=device,
        dtype=dtype)
    seq_lens = torch.full((batch,), context, dtype=torch.int32, device=device)
    query = torch.randn(batch, args.num_heads, args.head_size, dtype=dtype, device=device)
    return query, key_cache, value_cache, block_tables, seq_lens


def backends(args, inputs, batch: int, context: int) -> dict:
    """name -> zero-argument callable running one decode step."""
    query, key_cache, value_cache, block_tables, seq_lens = inputs
    scale = args.head_size ** -0.5
    device_type = torch.device(args.device).type
    fns = {}
    if has_compiled("paged_attention_v1", device_type):
        fns["compiled"] = lambda: _compiled.paged_attention(*inputs, scale)
        for version in ("v1", "v2"):
            fns[f"compiled {version}"] = lambda v=version: run_version(v, inputs, scale)
        for size in args.partition_sizes:  # v2 at a fixed partition size, to tune the choice
            if size < context:
                fns[f"compiled v2 p{size}"] = lambda s=size: run_version("v2", inputs, scale, s)
    if device_type == "cuda" and triton_available():
        from inference_engine.ops.triton_prefill_attention import paged_attention as triton_attention
        fns["triton"] = lambda: triton_attention(*inputs, scale)
    if batch * context <= args.ref_max_tokens:
        fns["torch ref"] = lambda: paged_attention_ref(*inputs, scale)
    dense_k = torch.randn(batch, args.num_kv_heads, context, args.head_size, dtype=query.dtype,
                          device=query.device)
    dense_v = torch.randn_like(dense_k)
    q = query.unsqueeze(2)  # [B, H, 1, D]
    fns["sdpa dense"] = lambda: F.scaled_dot_product_attention(q, dense_k, dense_v, scale=scale,
                                                               enable_gqa=True)
    return fns


def run_version(version: str, inputs, scale: float, size: int | None = None) -> torch.Tensor:
    query, key_cache, value_cache, block_tables, seq_lens = inputs
    out = torch.empty_like(query)
    ops = torch.ops.inference_engine
    if version == "v1":
        ops.paged_attention_v1(out, query, key_cache, value_cache, block_tables, seq_lens,
                              scale, None)
        return out
    max_context = block_tables.shape[1] * key_cache.shape[1]
    size = size or _compiled.partition_size(query.shape[0], key_cache.shape[2], max_context,
                                         query.device.type)
    parts = math.ceil(max_context / size)
    stats = torch.empty(2, *query.shape[:2], parts, device=query.device)
    tmp = torch.empty(*query.shape[:2], parts, query.shape[2], dtype=query.dtype, device=query.device)
    ops.paged_attention_v2(out, stats[0], stats[1], tmp, query, key_cache, value_cache,
                           block_tables, seq_lens, scale, None, size)
    return out


def main() -> None:
    args = parse_args()
    copy_gbs = copy_bandwidth_gbs(args.device)
    element = torch.tensor([], dtype=DTYPES[args.dtype]).element_size()
    rows = []
    for batch in args.batch_sizes:
        for context in args.context_lens:
            inputs = make_inputs(args, batch, context)
            kv_bytes = 2 * batch * context * args.num_kv_heads * args.head_size * element
            total_bytes = kv_bytes + 2 * inputs[0].numel() * element
            for name, fn in backends(args, inputs, batch, context).items():
                iters = args.iters if name != "torch ref" else max(1, args.iters // 10)
                us = time_us(fn, args.device, iters)
                gbs = total_bytes / us / 1e3
                rows.append([batch, context, name, us, gbs, 100 * gbs / copy_gbs])
            del inputs
    print(f"\ndevice: {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}; "
          f"copy bandwidth {copy_gbs:.0f} GB/s; {args.num_heads} query heads, {args.num_kv_heads} KV "
          f"heads, head size {args.head_size}, block size {args.block_size}, {args.dtype}")
    print_table(["batch", "context", "backend", "time us", "GB/s", "% of copy"], rows)
    if args.plot:
        save_plot(rows, args.plot)


def save_plot(rows, path: str) -> None:
    import matplotlib.pyplot as plt
    labels = sorted({r[2] for r in rows})
    cases = sorted({(r[0], r[1]) for r in rows})
    fig, ax = plt.subplots(figsize=(max(8, len(cases)), 4))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        share = {(r[0], r[1]): r[5] for r in rows if r[2] == label}
        ax.bar([c + i * width for c in range(len(cases))], [share.get(c, 0) for c in cases], width,
               label=label)
    ax.set_xticks([c + 0.4 for c in range(len(cases))], [f"B{b}/{n}" for b, n in cases], rotation=45)
    ax.set_ylabel("% of copy bandwidth")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
