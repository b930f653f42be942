"""Attention over the paged KV cache: store this step's keys and values (rotated first, for
models with rotary embeddings), then attend."""
import math

import torch
from torch import nn

from inference_engine import envs, ops
from inference_engine.model_executor.forward_context import get_attention_metadata, get_graph_split
from inference_engine.ops.attention import FP8_DTYPE

# INFERENCE_ENGINE_FUSED_ROTARY=0 rotates with one kernel and stores with another (to measure
# the fused kernel against them).
FUSED_ROTARY = not envs.is_off(envs.FUSED_ROTARY)


class Attention(nn.Module):
    """Multi-, grouped- or multi-query attention. The cache engine binds `k_cache` and
    `v_cache` ([num_blocks, block_size, num_kv_heads, head_size]) before the first step.

    `alibi_slopes` (float32 [num_heads], this rank's heads) adds ALiBi's position bias
    slope * (key position - query position) to every score. `rotary_emb` rotates queries and
    keys by their positions on the way in, in the kernel that stores the keys (one kernel where
    rotary, then the cache write, took two: the decode steps of a long run are many small
    kernels).
    """

    def __init__(self, num_heads: int, head_size: int, scale: float, num_kv_heads: int,
                 alibi_slopes: torch.Tensor | None = None, rotary_emb: nn.Module | None = None):
        super().__init__()
        self.num_heads, self.head_size, self.num_kv_heads = num_heads, head_size, num_kv_heads
        self.scale = scale
        self.rotary_emb = rotary_emb
        # A buffer, so that it follows the module to another device (it is no weight to load).
        self.register_buffer("alibi_slopes", alibi_slopes, persistent=False)
        self.k_cache = self.v_cache = torch.empty(0)
        # A checkpoint's KV-cache scales (layers/kv_cache_scales.py), for an FP8 cache only.
        self.k_scale = self.v_scale = 1.0

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                positions: torch.Tensor | None = None,
                out: torch.Tensor | None = None) -> torch.Tensor:
        """q [T, num_heads * head_size], k and v [T, num_kv_heads * head_size] (and the tokens'
        positions [T] with rotary embeddings) -> [T, num_heads * head_size], written into `out`
        when given (a piecewise CUDA graph's hand-off buffer)."""
        split = get_graph_split()
        if split is not None:
            return split(self, q, k, v, positions)
        meta = get_attention_metadata()
        if self.rotary_emb is not None and positions is None:
            raise ValueError("attention with rotary embeddings needs the tokens' positions")
        # With scales, an FP8 cache holds k / k_scale and v / v_scale (rotary is linear: the
        # rotated keys are scaled alike); k_scale then goes into the softmax scale and v_scale
        # onto the output, so the attention kernels are the same.
        scaled = self.k_cache.dtype == FP8_DTYPE and (self.k_scale, self.v_scale) != (1.0, 1.0)
        if scaled:
            k, v = k * (1.0 / self.k_scale), v * (1.0 / self.v_scale)
        if self.rotary_emb is not None and FUSED_ROTARY:
            q = self.rotary_emb.rotate_and_cache(positions, q, k, v, self.k_cache, self.v_cache,
                                                 meta.slot_mapping)
        else:
            if self.rotary_emb is not None:
                q, k = self.rotary_emb(positions, q, k)
            rows = (-1, self.num_kv_heads, self.head_size)
            ops.reshape_and_cache(k.view(rows), v.view(rows), self.k_cache, self.v_cache,
                                  meta.slot_mapping)
        q = q.view(-1, self.num_heads, self.head_size)
        n, p = meta.num_prefills, meta.num_prefill_tokens
        # Both kernels write straight into their rows of one output (no copies); q may be a
        # strided view of the fused qkv projection's output.
        if out is None:
            out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
        out = out.view(-1, self.num_heads, self.head_size)
        scale = self.scale * self.k_scale if scaled else self.scale
        if p > 0:  # the prefills' tokens come first
            self._prefill(q[:p], meta, out[:p], scale)
        if p < q.shape[0]:  # then one token per decoding sequence
            self._decode(q[p:], meta.block_tables[n:], meta.seq_lens[n:], out[p:], scale)
        if scaled:
            out.mul_(self.v_scale)
        return out.view(-1, self.num_heads * self.head_size)

    def _prefill(self, q: torch.Tensor, meta, out: torch.Tensor, scale: float) -> None:
        n = meta.num_prefills
        ops.prefill_attention(q, self.k_cache, self.v_cache, meta.block_tables[:n],
                              meta.query_start_loc, meta.seq_lens[:n], scale,
                              self.alibi_slopes, out=out)

    def _decode(self, q: torch.Tensor, block_tables: torch.Tensor, seq_lens: torch.Tensor,
                out: torch.Tensor, scale: float) -> None:
        ops.paged_attention(q, self.k_cache, self.v_cache, block_tables, seq_lens,
                            scale, self.alibi_slopes, out=out)


def get_alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's slope for each of `num_heads` heads, float32 [num_heads], bit for bit as
    transformers' build_alibi_tensor computes them.

    For a power of two n, the slopes are r, r^2, ..., r^n with r = 2^(-8/n). For other counts,
    the first n = 2^floor(log2(num_heads)) heads take those, and the remaining ones the odd
    powers r'^1, r'^3, ... of the next power's ratio r' = 2^(-4/n) (the ALiBi paper's recipe).
    Integer powers of a float32 ratio, as transformers takes them, keep the rounding identical.
    """
    n = 2 ** math.floor(math.log2(num_heads))
    ratio = torch.tensor(2.0 ** (-8.0 / n), dtype=torch.float32)
    slopes = torch.pow(ratio, torch.arange(1, n + 1, dtype=torch.int32))
    if n < num_heads:
        extra_ratio = torch.tensor(2.0 ** (-4.0 / n), dtype=torch.float32)
        odd_powers = torch.arange(1, 2 * (num_heads - n), 2, dtype=torch.int32)
        slopes = torch.cat([slopes, torch.pow(extra_ratio, odd_powers)])
    return slopes
