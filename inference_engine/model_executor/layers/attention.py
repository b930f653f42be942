"""Attention over the paged KV cache: store this step's keys and values, then attend."""
import torch
from torch import nn

from inference_engine import ops
from inference_engine.model_executor.forward_context import get_attention_metadata


class Attention(nn.Module):
    """Multi-, grouped- or multi-query attention. The cache engine binds `k_cache` and
    `v_cache` ([num_blocks, block_size, num_kv_heads, head_size]) before the first step."""

    def __init__(self, num_heads: int, head_size: int, scale: float, num_kv_heads: int,
                 alibi_slopes: torch.Tensor | None = None):
        super().__init__()
        self.num_heads, self.head_size, self.num_kv_heads = num_heads, head_size, num_kv_heads
        self.scale = scale
        self.alibi_slopes = alibi_slopes
        self.k_cache = self.v_cache = torch.empty(0)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q [T, num_heads * head_size], k and v [T, num_kv_heads * head_size] -> [T, num_heads * head_size]."""
        meta = get_attention_metadata()
        q = q.view(-1, self.num_heads, self.head_size)
        k = k.view(-1, self.num_kv_heads, self.head_size)
        v = v.view(-1, self.num_kv_heads, self.head_size)
        ops.reshape_and_cache(k, v, self.k_cache, self.v_cache, meta.slot_mapping)
        if meta.is_prefill:
            out = ops.prefill_attention(q, self.k_cache, self.v_cache, meta.block_tables,
                                        meta.query_start_loc, meta.seq_lens, self.scale,
                                        self.alibi_slopes)
        else:
            out = ops.paged_attention(q, self.k_cache, self.v_cache, meta.block_tables,
                                      meta.seq_lens, self.scale, self.alibi_slopes)
        return out.reshape(-1, self.num_heads * self.head_size)
