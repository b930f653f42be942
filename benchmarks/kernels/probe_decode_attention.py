"""Decode attention at the batch shapes of a ShareGPT run, one case at a time: for timing, or for
Nsight Compute to look inside the kernel (`--once`: one launch per case, no warm-up).

Each case is (sequences, context tokens) with Llama-3-8B's heads (32 query, 8 KV, 128 wide) and a
block table as wide as a CUDA graph's (8192 tokens), so the op picks v1 or v2 and the partition
size as it does inside the engine's graphs. Defaults: a busy step (192 x 320), the middle of a
run (96 x 500) and its later part (34 x 790), from benchmarks/workload_floor.py's replay.
`--partitions 0 256 512` times v1 and v2 at those partition sizes instead of the op's choice,
`--check` compares each output with the CUDA-core kernel's, and `--kv-heads 1 --heads 4` with 8x
the sequences keeps the grid and the work but makes each head's rows contiguous in the cache
(the layout test of results_archive/2026-11.md, twelfth session).

    python benchmarks/kernels/probe_decode_attention.py
    ncu --kernel-name regex:paged_attention_mma --section SpeedOfLight --section Occupancy \
        --section WarpStateStats python benchmarks/kernels/probe_decode_attention.py --once
"""
import argparse
import contextlib
import os
from unittest import mock

import torch

from bandwidth import copy_bandwidth_gbs, print_table, random_paged_kv_cache, time_us
from inference_engine.ops import _compiled
from inference_engine.ops._dispatch import has_compiled
from inference_engine.ops.attention import FP8_DTYPE


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", default=["192x320", "96x500", "34x790"],
                   help="SEQUENCESxCONTEXT")
    p.add_argument("--table-tokens", type=int, default=8192, help="the block table's width")
    p.add_argument("--once", action="store_true", help="one launch per case (for ncu)")
    p.add_argument("--check", action="store_true",
                   help="compare each case's output with the CUDA-core kernel's")
    p.add_argument("--partitions", nargs="+", default=["auto"],
                   help="v2 partition sizes to time (0: v1; auto: the op's own choice)")
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--heads", type=int, default=32, help="query heads")
    p.add_argument("--kv-cache-dtype", default="auto", choices=["auto", "fp8"],
                   help="the cache's values: bf16 (auto) or FP8 e4m3 (half the bytes)")
    return p.parse_args()


@contextlib.contextmanager
def forced_version(choice: str):
    """The op's v1/v2 choice and partition size as `choice` says: "0" v1, "N" v2 with N-token
    partitions, "auto" the op's own."""
    if choice == "auto":
        yield
        return
    size = int(choice)
    with mock.patch.object(_compiled, "use_v1", lambda *args, **kwargs: size == 0), \
            mock.patch.object(_compiled, "partition_size", lambda *args, **kwargs: size):
        yield


def time_case(args, case, choice, copy_gbs, query, key_cache, value_cache, tables, lens, out):
    """One table row for `case` under `choice` (none with --once)."""
    seqs, context = map(int, case.split("x"))
    heads, kv_heads, head_size = query.shape[1], key_cache.shape[2], query.shape[2]
    run = lambda: _compiled.paged_attention(query, key_cache, value_cache, tables, lens,
                                            head_size ** -0.5, out=out)
    with forced_version(choice):
        if args.once:
            run()
            torch.cuda.synchronize()
            return []
        us = time_us(run, "cuda", iters=50)
        if args.check:
            expected = out.clone()
            with mock.patch.dict(os.environ, {_compiled.PAGED_ATTENTION_KERNEL: "simt"}):
                run()
            error = (out.float() - expected.float()).abs().max().item()
            print(f"{case} ({choice}): max |tensor cores - CUDA cores| = {error:.3g}")
        v1 = _compiled.use_v1(seqs, kv_heads, heads // kv_heads, args.table_tokens,
                              _compiled.decode_kernel(query, key_cache))
        size = 0 if v1 else _compiled.partition_size(seqs, kv_heads, args.table_tokens)
    kv_bytes = 2 * seqs * context * kv_heads * head_size * key_cache.element_size()
    return [[case, f"v2/{size}" if size else "v1", us, kv_bytes / us / 1e3,
             100 * kv_bytes / us / 1e3 / copy_gbs]]


def main() -> None:
    args = parse_args()
    assert has_compiled("paged_attention_v1", "cuda"), "the extension is not built"
    torch.manual_seed(0)
    heads, kv_heads, head_size, block_size = args.heads, args.kv_heads, 128, 16
    width = args.table_tokens // block_size
    copy_gbs = None if args.once else copy_bandwidth_gbs("cuda")
    rows = []
    for case in args.cases:
        seqs, context = map(int, case.split("x"))
        key_cache, value_cache, tables = random_paged_kv_cache(seqs, context, kv_heads, head_size,
                                                               block_size, width)
        if args.kv_cache_dtype == "fp8":
            key_cache, value_cache = key_cache.to(FP8_DTYPE), value_cache.to(FP8_DTYPE)
        lens = torch.full((seqs,), context, dtype=torch.int32, device="cuda")
        query = torch.randn(seqs, heads, head_size, dtype=torch.bfloat16, device="cuda")
        out = torch.empty_like(query)
        for choice in args.partitions:
            rows += time_case(args, case, choice, copy_gbs, query, key_cache, value_cache, tables,
                              lens, out)
    if rows:
        print(f"copy bandwidth {copy_gbs:.0f} GB/s")
        print_table(["case", "version", "us", "KV GB/s", "% of copy"], rows)


if __name__ == "__main__":
    main()
