"""Attention over the paged KV cache and the cache writes: plain-PyTorch references.

Cache layout, one tensor per layer and kind: key_cache and value_cache are
[num_blocks, block_size, num_kv_heads, head_size]; token t of a sequence lives in block
block_table[t // block_size] at row t % block_size. A slot is block * block_size + row.

The caches hold the model's dtype or FP8 (float8_e4m3fn, `--kv-cache-dtype fp8`): values are
rounded to nearest and saturated at +-448 on the way in (as the CUDA kernels' conversion does),
with no scale, as vLLM's FP8 cache does without calibrated scales; readers convert them back to
the query's dtype, exactly.
"""
import torch
import torch.nn.functional as F

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8_DTYPE).max  # 448


def to_cache_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x as the cache's dtype: saturated to FP8's range for an FP8 cache, as the kernels store."""
    if dtype == FP8_DTYPE and x.dtype != dtype:
        return x.float().clamp(-FP8_MAX, FP8_MAX).to(dtype)
    return x.to(dtype)


def reshape_and_cache_ref(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor,
                          value_cache: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    """Writes key/value [T, num_kv_heads, head_size] into the cache rows named by slot_mapping [T].

    A negative slot means "do not store" (padding tokens).
    """
    keep = slot_mapping >= 0
    slots = slot_mapping[keep].long()
    key_cache.view(-1, *key_cache.shape[2:])[slots] = to_cache_dtype(key[keep], key_cache.dtype)
    value_cache.view(-1, *value_cache.shape[2:])[slots] = to_cache_dtype(value[keep],
                                                                         value_cache.dtype)


def _gather_context(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """The first `length` tokens of one sequence's cache: [length, num_kv_heads, head_size]."""
    block_size = cache.shape[1]
    num_blocks = (length + block_size - 1) // block_size
    return cache[block_table[:num_blocks].long()].flatten(0, 1)[:length]


def _alibi_bias(slopes: torch.Tensor, q_pos: torch.Tensor, k_len: int) -> torch.Tensor:
    """ALiBi bias [H, Q, K]: slope * (key position - query position)."""
    k_pos = torch.arange(k_len, device=slopes.device)
    return slopes[:, None, None] * (k_pos[None, None, :] - q_pos[None, :, None]).to(slopes.dtype)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, scale: float,
            alibi_slopes: torch.Tensor | None) -> torch.Tensor:
    """q [Q, H, D] at absolute positions q_pos attends causally to k, v [K, Hk, D]."""
    num_heads, num_kv_heads = q.shape[1], k.shape[1]
    k_pos = torch.arange(k.shape[0], device=q.device)
    mask = k_pos[None, :] <= q_pos[:, None]  # [Q, K]
    bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill(~mask, float("-inf"))
    if alibi_slopes is not None:
        bias = bias[None] + _alibi_bias(alibi_slopes.to(q.dtype), q_pos, k.shape[0])
    out = F.scaled_dot_product_attention(
        q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), attn_mask=bias, scale=scale,
        enable_gqa=num_heads != num_kv_heads)
    return out.transpose(0, 1)


def prefill_attention_ref(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                          block_tables: torch.Tensor, query_start_loc: torch.Tensor,
                          seq_lens: torch.Tensor, scale: float,
                          alibi_slopes: torch.Tensor | None = None,
                          out: torch.Tensor | None = None) -> torch.Tensor:
    """Causal attention for new tokens whose K/V are already in the cache.

    query [T, H, D] holds each sequence's new tokens back to back (sequence i owns rows
    query_start_loc[i]:query_start_loc[i + 1]); they are the last tokens of its seq_lens[i]
    cached tokens. Returns [T, H, D], written into `out` when given.
    """
    out = torch.empty_like(query) if out is None else out
    starts, lens = query_start_loc.tolist(), seq_lens.tolist()
    for i, seq_len in enumerate(lens):
        q = query[starts[i]:starts[i + 1]]
        k = _gather_context(key_cache, block_tables[i], seq_len)
        v = _gather_context(value_cache, block_tables[i], seq_len)
        q_pos = torch.arange(seq_len - q.shape[0], seq_len, device=q.device)
        out[starts[i]:starts[i + 1]] = _attend(q, k.to(q.dtype), v.to(q.dtype), q_pos, scale,
                                               alibi_slopes)
    return out


def paged_attention_ref(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                        block_tables: torch.Tensor, seq_lens: torch.Tensor, scale: float,
                        alibi_slopes: torch.Tensor | None = None,
                        out: torch.Tensor | None = None) -> torch.Tensor:
    """Decode attention: one query token per sequence, query [B, H, D], attending to all
    seq_lens[i] cached tokens of its sequence. Returns [B, H, D], written into `out` when given.

    All sequences go through one padded, masked attention call: on the CPU the per-call overhead
    of a loop over sequences dominates these tiny products.
    """
    num_seqs, num_heads, _ = query.shape
    block_size = key_cache.shape[1]
    max_len = int(seq_lens.max())
    tables = block_tables[:, :(max_len + block_size - 1) // block_size].long()
    k = key_cache[tables].flatten(1, 2)[:, :max_len].to(query.dtype)  # [B, L, Hk, D]
    v = value_cache[tables].flatten(1, 2)[:, :max_len].to(query.dtype)
    positions = torch.arange(max_len, device=query.device)
    valid = positions[None, :] < seq_lens[:, None].to(positions.dtype)  # [B, L]
    # Slots past a shorter context hold whatever the cache held (in an unwritten FP8 cache, NaN
    # bit patterns are common), and a masked score still multiplies them: zero them.
    k = k.masked_fill(~valid[:, :, None, None], 0)
    v = v.masked_fill(~valid[:, :, None, None], 0)
    bias = torch.zeros(valid.shape, dtype=query.dtype, device=query.device)
    bias = bias.masked_fill(~valid, float("-inf"))[:, None, None, :]  # [B, 1, 1, L]
    if alibi_slopes is not None:
        distance = (positions[None, :] - (seq_lens[:, None].to(positions.dtype) - 1)).to(query.dtype)
        bias = bias + alibi_slopes.to(query.dtype)[None, :, None, None] * distance[:, None, None, :]
    result = F.scaled_dot_product_attention(
        query.unsqueeze(2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias, scale=scale,
        enable_gqa=num_heads != k.shape[2]).squeeze(2)
    return result if out is None else out.copy_(result)


def copy_blocks_ref(key_caches: list[torch.Tensor], value_caches: list[torch.Tensor],
                    block_mapping: torch.Tensor) -> None:
    """Copies whole blocks within every layer's cache: block_mapping is [N, 2] of (src, dst)."""
    src, dst = block_mapping[:, 0].long(), block_mapping[:, 1].long()
    for cache in (*key_caches, *value_caches):
        cache[dst] = cache[src]


def swap_blocks_ref(src: torch.Tensor, dst: torch.Tensor, block_mapping: torch.Tensor) -> None:
    """Copies blocks between two caches (e.g. GPU and CPU): block_mapping is [N, 2] of (src, dst)."""
    dst[block_mapping[:, 1].long()] = src[block_mapping[:, 0].long()].to(dst.device)
