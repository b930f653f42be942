"""Shared pieces of the kernel benchmarks: timers (wall clock; CUDA graph replays), the
device-to-device copy bandwidth that every figure is compared with, and the table printer."""
import time
from typing import Callable

import torch


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_us(fn: Callable[[], object], device: str, iters: int, warmup: int = 5) -> float:
    """Mean wall time of fn() in microseconds, measured over `iters` back-to-back calls."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / iters * 1e6


def graph_time_us(fn, calls: int, replays: int = 10) -> float:
    """GPU time of one call: `calls` calls captured in a graph, replayed back to back."""
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1e3 / (replays * calls)


def copy_bandwidth_gbs(device: str, size_mib: int = 1024, iters: int = 20) -> float:
    """Device-to-device copy bandwidth in GB/s, counting the bytes read and the bytes written."""
    src = torch.empty(size_mib * 2**20, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    us = time_us(lambda: dst.copy_(src), device, iters)
    return 2 * src.numel() / us / 1e3


def random_paged_kv_cache(seqs: int, context: int, kv_heads: int, head_size: int, block_size: int,
                          table_blocks: int | None = None, device: str = "cuda",
                          dtype: torch.dtype = torch.bfloat16):
    """Random K and V caches holding `seqs` contexts of `context` tokens in shuffled blocks, and
    their block tables (int32, `table_blocks` wide, zero-padded; as wide as needed if None)."""
    blocks_per_seq = -(-context // block_size)
    shape = (seqs * blocks_per_seq, block_size, kv_heads, head_size)
    key_cache = torch.randn(shape, dtype=dtype, device=device)
    value_cache = torch.randn(shape, dtype=dtype, device=device)
    tables = torch.zeros(seqs, table_blocks or blocks_per_seq, dtype=torch.int32, device=device)
    tables[:, :blocks_per_seq] = torch.randperm(seqs * blocks_per_seq, device=device).view(
        seqs, blocks_per_seq).int()
    return key_cache, value_cache, tables


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """Prints rows under headers, columns right-aligned to their widest cell."""
    cells = [headers] + [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths)))
        if n == 0:
            print("  ".join("-" * width for width in widths))
