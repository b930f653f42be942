"""Decode paged attention on the context lengths a ShareGPT run really has, timed as the engine
runs it: inside a CUDA graph (no launch overhead), with the block table as wide as the engine
passes it (`batch`: the batch's longest context, as in eager mixed steps; `graph`: the model's
whole length, as in captured decode graphs). Uniform contexts (benchmark_paged_attention.py) hide
the cost of one long sequence in a batch of short ones and of a few long ones alone.

Contexts: batches above --tail-batch take random requests at a random point of their output
(the busy middle of a run); smaller batches take the longest requests late in their output (the
tail of a run). `--schedule-steps` takes instead the decode rows of those steps of the scheduler's
replay (benchmarks/workload_floor.py, 192 sequences): the long survivors after the busy part. Backends: the ops' choice, v1, and v2 at each partition size, for each of
--kernels (the GPU kernel: `mma` on the tensor cores, `simt` on the CUDA cores).

    python benchmarks/kernels/benchmark_decode_attention_mix.py --workload sharegpt-1000.jsonl
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

from bandwidth import copy_bandwidth_gbs, graph_time_us, print_table
from benchmark_paged_attention import run_version
from inference_engine.ops import _compiled
from inference_engine.ops._dispatch import has_compiled


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", required=True, help="JSONL with prompt_token_ids and output_len")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128, 256])
    p.add_argument("--tail-batch", type=int, default=16)
    p.add_argument("--partition-sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--max-model-len", type=int, default=8192, help="the graph table's width in tokens")
    p.add_argument("--num-heads", type=int, default=32)
    p.add_argument("--num-kv-heads", type=int, default=8)
    p.add_argument("--head-size", type=int, default=128)
    p.add_argument("--block-size", type=int, default=16)
    p.add_argument("--calls", type=int, default=20, help="calls captured in one graph")
    p.add_argument("--kernels", nargs="+", default=["mma"], choices=["mma", "simt"],
                   help="GPU decode kernels to time (INFERENCE_ENGINE_PAGED_ATTENTION_KERNEL)")
    p.add_argument("--schedule-steps", type=int, nargs="+", default=[],
                   help="batches of these replayed steps' contexts (instead of --batch-sizes)")
    p.add_argument("--max-num-seqs", type=int, default=192, help="the replay's batch limit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "fp8"],
                   help="the cache's values: bf16 (auto) or FP8 e4m3 (half the bytes)")
    return p.parse_args()


def sample_contexts(requests: list[tuple[int, int]], batch: int, tail: bool,
                    rng: np.random.Generator) -> list[int]:
    if tail:  # the longest requests, late in their output
        longest = sorted(requests, key=lambda r: -r[1])[:batch]
        return [p + int(rng.uniform(0.5, 1.0) * o) for p, o in longest]
    picks = rng.choice(len(requests), size=batch, replace=len(requests) < batch)
    return [requests[i][0] + 1 + int(rng.uniform(0, 1) * requests[i][1]) for i in picks]


def scheduled_contexts(requests: list[tuple[int, int]], steps: list[int],
                       max_num_seqs: int) -> list[list[int]]:
    """The decode rows' context lengths (this step's token included) at each of `steps`."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from workload_floor import replay
    wanted, found = set(steps), {}
    for step, (_, _, contexts) in enumerate(replay(requests, max_num_seqs, 8192)):
        if step in wanted:
            found[step] = [c + 1 for c in contexts]
    return [found[step] for step in steps if step in found]


def make_inputs(args, contexts: list[int], width_blocks: int):
    device, dtype = "cuda", torch.bfloat16
    blocks = [math.ceil(c / args.block_size) for c in contexts]
    shape = (sum(blocks), args.block_size, args.num_kv_heads, args.head_size)
    cache_dtype = torch.float8_e4m3fn if args.kv_cache_dtype == "fp8" else dtype
    key_cache = torch.randn(shape, dtype=dtype, device=device).to(cache_dtype)
    value_cache = torch.randn(shape, dtype=dtype, device=device).to(cache_dtype)
    ids = torch.randperm(sum(blocks), dtype=torch.int32)
    table = torch.zeros(len(contexts), width_blocks, dtype=torch.int32)
    start = 0
    for row, n in enumerate(blocks):
        table[row, :n] = ids[start:start + n]
        start += n
    seq_lens = torch.tensor(contexts, dtype=torch.int32, device=device)
    query = torch.randn(len(contexts), args.num_heads, args.head_size, dtype=dtype, device=device)
    return query, key_cache, value_cache, table.to(device), seq_lens


def backends(args, inputs, kernel: str) -> dict:
    key_cache, block_tables = inputs[1], inputs[3]
    scale = args.head_size ** -0.5
    fns = {"ops' choice": lambda: _compiled.paged_attention(*inputs, scale)}
    width_tokens = block_tables.shape[1] * key_cache.shape[1]
    group = min(args.num_heads // args.num_kv_heads, 8)
    if kernel == "mma" or width_tokens * group * 4 <= 160 * 1024:  # simt: logits in shared memory
        fns["v1"] = lambda: run_version("v1", inputs, scale)
    for size in args.partition_sizes:
        if size < width_tokens:
            fns[f"v2 p{size}"] = lambda s=size: run_version("v2", inputs, scale, s)
    return fns


def main() -> None:
    args = parse_args()
    assert has_compiled("paged_attention_v2", "cuda"), "build the extension first"  # also loads it
    rng = np.random.default_rng(args.seed)
    with open(args.workload) as f:
        requests = [(len(r["prompt_token_ids"]), r["output_len"]) for r in map(json.loads, f)]
    copy_gbs = copy_bandwidth_gbs("cuda")
    graph_width = math.ceil(args.max_model_len / args.block_size)
    rows = []
    batches = (scheduled_contexts(requests, args.schedule_steps, args.max_num_seqs)
               if args.schedule_steps else
               [sample_contexts(requests, b, b <= args.tail_batch, rng) for b in args.batch_sizes])
    for contexts in batches:
        batch = len(contexts)
        element = 1 if args.kv_cache_dtype == "fp8" else 2
        kv_bytes = 2 * sum(contexts) * args.num_kv_heads * args.head_size * element
        for width_name, width in (("batch", math.ceil(max(contexts) / args.block_size)),
                                  ("graph", graph_width)):
            inputs = make_inputs(args, contexts, width)
            for kernel in args.kernels:
                os.environ["INFERENCE_ENGINE_PAGED_ATTENTION_KERNEL"] = kernel  # read at capture
                for name, fn in backends(args, inputs, kernel).items():
                    us = graph_time_us(fn, args.calls)
                    gbs = kv_bytes / us / 1e3
                    rows.append([batch, width_name, int(np.mean(contexts)), max(contexts), kernel,
                                 name, us, gbs, 100 * gbs / copy_gbs])
            del inputs
            torch.cuda.empty_cache()
    print(f"\ndevice: {torch.cuda.get_device_name()}; copy bandwidth {copy_gbs:.0f} GB/s; "
          f"{args.num_heads} query / {args.num_kv_heads} KV heads, head size {args.head_size}, bf16, "
          f"cache {args.kv_cache_dtype}; "
          f"bytes: K and V of every context token")
    print_table(["batch", "table", "mean ctx", "max ctx", "kernel", "backend", "time us", "GB/s",
                 "% of copy"],
                rows)


if __name__ == "__main__":
    main()
