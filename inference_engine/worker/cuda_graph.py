"""CUDA graphs for decode steps: one graph per padded batch size, replayed with new inputs.

A decode step launches a few hundred small kernels; replaying a captured graph removes the
per-launch CPU cost. Every graph reads its inputs from the same static buffers, so a replay is:
copy this step's tensors in, pad, replay, read the hidden states out.
"""
import bisect

import torch
from torch import nn

from inference_engine.model_executor.forward_context import AttentionMetadata, set_attention_metadata


def capture_sizes(limit: int) -> list[int]:
    """Sizes to capture up to `limit` (decode batch sizes, or a step's token count for the
    piecewise graphs): every 8 up to 256, every 16 up to 512, then every 32 — padding adds at
    most 1/16 of the rows past 256, while a padded row costs less than another graph's capture
    time and memory."""
    sizes = {1, 2, 4, limit} | set(range(8, min(limit, 256) + 1, 8))
    sizes |= set(range(272, min(limit, 512) + 1, 16))
    sizes |= set(range(544, limit + 1, 32))
    return sorted(s for s in sizes if s <= limit)


def padded_size(sizes: list[int], n: int) -> int:
    """The smallest of the sorted captured `sizes` that holds n."""
    return sizes[bisect.bisect_left(sizes, n)]


class CUDAGraphRunner:
    """Captures `model(input_ids, positions)` for decode batches of up to max_num_seqs."""

    def __init__(self, model: nn.Module, max_num_seqs: int, max_blocks_per_seq: int,
                 hidden_size: int, dtype: torch.dtype, device: torch.device):
        self.model = model
        self.sizes = capture_sizes(max_num_seqs)
        n = self.sizes[-1]
        self.input_ids = torch.zeros(n, dtype=torch.int64, device=device)
        self.positions = torch.zeros(n, dtype=torch.int64, device=device)
        self.slot_mapping = torch.full((n,), -1, dtype=torch.int64, device=device)
        self.seq_lens = torch.ones(n, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(n, max_blocks_per_seq, dtype=torch.int32, device=device)
        self.hidden = torch.zeros(n, hidden_size, dtype=dtype, device=device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}

    def _metadata(self, bs: int) -> AttentionMetadata:
        return AttentionMetadata(self.slot_mapping[:bs], self.block_tables[:bs],
                                 self.seq_lens[:bs], max_query_len=1,
                                 max_seq_len=self.block_tables.shape[1])

    @torch.inference_mode()
    def capture(self, pool=None) -> None:
        """Captures every size into the graph memory pool `pool` (None: a new one)."""
        for bs in reversed(self.sizes):  # largest first, so smaller graphs reuse its memory pool
            graph = torch.cuda.CUDAGraph()
            with set_attention_metadata(self._metadata(bs)):
                self.hidden[:bs] = self.model(self.input_ids[:bs], self.positions[:bs])  # warm-up
                with torch.cuda.graph(graph, pool):
                    self.hidden[:bs] = self.model(self.input_ids[:bs], self.positions[:bs])
            pool = graph.pool()
            self.graphs[bs] = graph
        torch.cuda.synchronize()

    def can_run(self, batch_size: int) -> bool:
        return batch_size <= self.sizes[-1]

    def run(self, input_ids: torch.Tensor, positions: torch.Tensor,
            meta: AttentionMetadata) -> torch.Tensor:
        bs = input_ids.shape[0]
        padded = padded_size(self.sizes, bs)
        self.input_ids[:bs] = input_ids
        self.positions[:bs] = positions
        self.slot_mapping[:bs] = meta.slot_mapping
        self.slot_mapping[bs:padded] = -1  # padding rows store nothing
        self.seq_lens[:bs] = meta.seq_lens
        self.seq_lens[bs:padded] = 1
        width = meta.block_tables.shape[1]
        self.block_tables[:bs, :width] = meta.block_tables
        self.graphs[padded].replay()
        return self.hidden[:bs]
