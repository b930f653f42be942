"""Decode attention at the batch shapes of a ShareGPT run, one case at a time: for timing, or for
Nsight Compute to look inside the kernel (`--once`: one launch per case, no warm-up).

Each case is (sequences, context tokens) with Llama-3-8B's heads (32 query, 8 KV, 128 wide) and a
block table as wide as a CUDA graph's (8192 tokens), so the op picks v1 or v2 and the partition
size as it does inside the engine's graphs. Defaults: a busy step (192 x 320), the middle of a
run (96 x 500) and its later part (34 x 790), from benchmarks/workload_floor.py's replay.

    python benchmarks/kernels/probe_decode_attention.py
    ncu --kernel-name regex:paged_attention_mma --section SpeedOfLight --section Occupancy \
        --section WarpStateStats python benchmarks/kernels/probe_decode_attention.py --once
"""
import argparse

import torch

from bandwidth import copy_bandwidth_gbs, print_table, time_us
from inference_engine.ops import _compiled
from inference_engine.ops._dispatch import has_compiled


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=["192x320", "96x500", "34x790"],
                   help="SEQUENCESxCONTEXT")
    p.add_argument("--table-tokens", type=int, default=8192, help="the block table's width")
    p.add_argument("--once", action="store_true", help="one launch per case (for ncu)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    assert has_compiled("paged_attention_v1", "cuda"), "the extension is not built"
    torch.manual_seed(0)
    heads, kv_heads, head_size, block_size = 32, 8, 128, 16
    width = args.table_tokens // block_size
    copy_gbs = None if args.once else copy_bandwidth_gbs("cuda")
    rows = []
    for case in args.cases:
        seqs, context = map(int, case.split("x"))
        blocks_per_seq = -(-context // block_size)
        shape = (seqs * blocks_per_seq, block_size, kv_heads, head_size)
        key_cache = torch.randn(shape, dtype=torch.bfloat16, device="cuda")
        value_cache = torch.randn(shape, dtype=torch.bfloat16, device="cuda")
        tables = torch.zeros(seqs, width, dtype=torch.int32, device="cuda")
        tables[:, :blocks_per_seq] = torch.randperm(seqs * blocks_per_seq, device="cuda").view(
            seqs, blocks_per_seq).int()
        lens = torch.full((seqs,), context, dtype=torch.int32, device="cuda")
        query = torch.randn(seqs, heads, head_size, dtype=torch.bfloat16, device="cuda")
        out = torch.empty_like(query)
        run = lambda: _compiled.paged_attention(query, key_cache, value_cache, tables, lens,
                                                head_size ** -0.5, out=out)
        if args.once:
            run()
            torch.cuda.synchronize()
            continue
        us = time_us(run, "cuda", iters=50)
        kv_bytes = 2 * seqs * context * kv_heads * head_size * 2
        v1 = _compiled.use_v1(seqs, kv_heads, heads // kv_heads, args.table_tokens, "cuda_mma")
        rows.append([case, "v1" if v1 else "v2", us, kv_bytes / us / 1e3,
                     100 * kv_bytes / us / 1e3 / copy_gbs])
    if rows:
        print(f"copy bandwidth {copy_gbs:.0f} GB/s")
        print_table(["case", "version", "us", "KV GB/s", "% of copy"], rows)


if __name__ == "__main__":
    main()
