"""Triton attention over the paged KV cache: causal prefill of variable-length sequences.

The new tokens of every sequence are the last of its cached tokens (written by reshape_and_cache
first), so the same kernel serves plain prompts, prompts behind a cached prefix, and chunked
prefill. One program computes BLOCK_M query rows of one head with an online softmax over
BLOCK_N-token tiles of keys gathered through the block table. Tiles of all sequences are numbered
back to back, so the grid needs no host-side maximum (no device sync, graph-capturable).
Decode (one query per sequence) is the special case `paged_attention` below.
"""
import torch
import triton
import triton.language as tl

from inference_engine.ops.triton_launch import CompiledLaunch

BLOCK_M = 64
BLOCK_N = 64
# Decode rows: tl.dot needs at least 16 rows, and a decode tile has one real row.
DECODE_BLOCK_M = 16


# Triton compiles a variant per "is 1 / divisible by 16" class of each integer argument. num_seqs
# and the block table's row stride (the batch's longest table) change every step: specialized,
# a step whose table width first fell in a new class compiled a variant mid-run (a second or
# more).
@triton.jit(do_not_specialize=["num_seqs", "stride_bt"])
def _prefill_kernel(
    query, key_cache, value_cache, out,  # query/out [T, H, D]; caches [blocks, block_size, Hk, D]
    block_tables, query_start_loc, seq_lens, tile_starts, alibi_slopes,
    scale, num_seqs, queries_per_kv,
    stride_qt, stride_qh, stride_ot, stride_oh, stride_kb, stride_kr, stride_kh, stride_bt,
    HEAD_SIZE: tl.constexpr, HEAD_PAD: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, HAS_ALIBI: tl.constexpr, IEEE_DOT: tl.constexpr,
):
    tile_id = tl.program_id(0)
    head = tl.program_id(1)
    # The sequence owning this tile: the last one whose first tile is <= tile_id.
    lo = 0
    hi = num_seqs
    while lo < hi:
        mid = (lo + hi) // 2
        if tl.load(tile_starts + mid + 1) <= tile_id:
            lo = mid + 1
        else:
            hi = mid
    if lo < num_seqs:
        seq = lo
        tile = tile_id - tl.load(tile_starts + seq)
        q_start = tl.load(query_start_loc + seq)
        q_len = tl.load(query_start_loc + seq + 1) - q_start
        seq_len = tl.load(seq_lens + seq)
        context_len = seq_len - q_len
        kv_head = head // queries_per_kv

        offs_m = tile * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_PAD)
        m_mask = offs_m < q_len
        d_mask = offs_d < HEAD_SIZE
        q = tl.load(query + (q_start + offs_m)[:, None] * stride_qt + head * stride_qh + offs_d[None, :],
                    mask=m_mask[:, None] & d_mask[None, :], other=0.0)
        q_pos = context_len + offs_m
        if HAS_ALIBI:
            slope = tl.load(alibi_slopes + head)

        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_PAD], dtype=tl.float32)
        # Keys past the tile's last query position are masked for every row: stop there.
        kv_end = tl.minimum(seq_len, context_len + (tile + 1) * BLOCK_M)
        for start_n in range(0, kv_end, BLOCK_N):
            offs_n = start_n + tl.arange(0, BLOCK_N)
            n_mask = offs_n < kv_end
            block = tl.load(block_tables + seq * stride_bt + offs_n // BLOCK_SIZE, mask=n_mask, other=0)
            kv_offset = (block.to(tl.int64) * stride_kb + (offs_n % BLOCK_SIZE) * stride_kr
                         + kv_head * stride_kh)
            kv_mask = n_mask[:, None] & d_mask[None, :]
            # An FP8 cache's values convert exactly to the query's 16-bit type (or float32).
            k = tl.load(key_cache + kv_offset[:, None] + offs_d[None, :], mask=kv_mask,
                        other=0.0).to(q.dtype)
            v = tl.load(value_cache + kv_offset[:, None] + offs_d[None, :], mask=kv_mask,
                        other=0.0).to(q.dtype)
            if IEEE_DOT:
                s = tl.dot(q, tl.trans(k), input_precision="ieee")
            else:
                s = tl.dot(q, tl.trans(k))
            s = s * scale
            if HAS_ALIBI:
                s += slope * (offs_n[None, :] - q_pos[:, None]).to(tl.float32)
            s = tl.where((offs_n[None, :] <= q_pos[:, None]) & n_mask[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.exp(s - m_new[:, None])
            alpha = tl.exp(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            if IEEE_DOT:
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
            else:
                acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
            m_i = m_new
        acc = acc / l_i[:, None]
        tl.store(out + (q_start + offs_m)[:, None] * stride_ot + head * stride_oh + offs_d[None, :],
                 acc.to(out.dtype.element_ty), mask=m_mask[:, None] & d_mask[None, :])


_launch_prefill = CompiledLaunch(_prefill_kernel)
# The last call's (query_start_loc, its version, block_m, tile_starts): every layer of a step
# passes the same query_start_loc tensor, so its tile starts (five small torch ops) are computed
# once per step rather than once per layer. Holding the tensor keeps its
# identity from being reused; an in-place write bumps its version. Inference tensors (the
# engine's) track no version: the model runner builds query_start_loc anew each step and never
# writes into it. Never kept from inside a CUDA graph capture: the graph must own what it reads.
_tile_starts_memo: list = [None, -2, 0, None]


def _tile_starts(query_start_loc: torch.Tensor, block_m: int) -> torch.Tensor:
    """[num_seqs + 1] int32: the grid index of each sequence's first query tile."""
    loc, version, memo_block_m, tile_starts = _tile_starts_memo
    if loc is query_start_loc and version == _version(loc) and memo_block_m == block_m:
        return tile_starts
    q_lens = query_start_loc[1:] - query_start_loc[:-1]
    tile_starts = torch.zeros(len(query_start_loc), dtype=torch.int32,
                              device=query_start_loc.device)
    tile_starts[1:] = torch.cumsum((q_lens + block_m - 1) // block_m, 0)
    capturing = query_start_loc.is_cuda and torch.cuda.is_current_stream_capturing()
    _tile_starts_memo[:] = ([None, -2, 0, None] if capturing else
                            [query_start_loc, _version(query_start_loc), block_m, tile_starts])
    return tile_starts


def _version(t: torch.Tensor) -> int:
    return -1 if t.is_inference() else t._version


def _launch(query, key_cache, value_cache, block_tables, query_start_loc, seq_lens, tile_starts,
            scale, alibi_slopes, block_m: int, out: torch.Tensor | None) -> torch.Tensor:
    if out is None:
        out = torch.empty(query.shape, dtype=query.dtype, device=query.device)
    num_seqs = seq_lens.shape[0]
    num_tokens, num_heads, head_size = query.shape
    assert key_cache.stride(3) == 1 and query.stride(2) == 1 and out.stride(2) == 1, \
        "head dimension must be contiguous"
    # Every sequence adds at most one partial tile to the T / block_m full ones.
    grid = (triton.cdiv(num_tokens, block_m) + num_seqs, num_heads)
    _launch_prefill(
        grid, query, key_cache, value_cache, out, block_tables, query_start_loc, seq_lens,
        tile_starts, alibi_slopes if alibi_slopes is not None else seq_lens, scale, num_seqs,
        num_heads // key_cache.shape[2],
        query.stride(0), query.stride(1), out.stride(0), out.stride(1),
        key_cache.stride(0), key_cache.stride(1), key_cache.stride(2), block_tables.stride(0),
        HEAD_SIZE=head_size, HEAD_PAD=max(16, triton.next_power_of_2(head_size)),
        BLOCK_SIZE=key_cache.shape[1], BLOCK_M=block_m, BLOCK_N=BLOCK_N,
        HAS_ALIBI=alibi_slopes is not None, IEEE_DOT=query.dtype == torch.float32)
    return out


def prefill_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                      block_tables: torch.Tensor, query_start_loc: torch.Tensor,
                      seq_lens: torch.Tensor, scale: float,
                      alibi_slopes: torch.Tensor | None = None,
                      out: torch.Tensor | None = None) -> torch.Tensor:
    """Triton version of ops.prefill_attention_ref (same arguments and result)."""
    return _launch(query, key_cache, value_cache, block_tables, query_start_loc, seq_lens,
                   _tile_starts(query_start_loc, BLOCK_M), scale, alibi_slopes, BLOCK_M, out)


def paged_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                    block_tables: torch.Tensor, seq_lens: torch.Tensor, scale: float,
                    alibi_slopes: torch.Tensor | None = None,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """Triton version of ops.paged_attention_ref: decode as a prefill of one token per sequence."""
    starts = torch.arange(query.shape[0] + 1, dtype=torch.int32, device=query.device)
    # One query, so one tile, per sequence: the tiles start where the queries do.
    return _launch(query, key_cache, value_cache, block_tables, starts, seq_lens, starts, scale,
                   alibi_slopes, DECODE_BLOCK_M, out)
