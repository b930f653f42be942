"""ALiBi: the slopes are transformers' own, and the torch references add slope * (key position -
query position) under the causal mask, checked against a dense float64 computation that reads
the paged cache token by token. (The compiled and Triton kernels are checked against these
references in test_paged_attention.py and test_triton_prefill_attention.py.)"""
import pytest
import torch
from transformers.models.bloom.modeling_bloom import build_alibi_tensor

from inference_engine.model_executor.layers.attention import get_alibi_slopes
from inference_engine.ops.attention import paged_attention_ref, prefill_attention_ref

BLOCK_SIZE = 4


@pytest.mark.parametrize("num_heads", [*range(1, 21), 32, 112])
def test_slopes_are_bit_identical_to_transformers(num_heads):
    # At key position 1 (no padding) transformers' bias is the slope itself.
    want = build_alibi_tensor(torch.ones(1, 2), num_heads, torch.float32)[:, 0, 1]
    got = get_alibi_slopes(num_heads)
    assert got.dtype == torch.float32 and torch.equal(got, want)


def dense_attention(query, key_cache, value_cache, block_table, seq_len, scale, slopes):
    """query [Q, H, D], the last Q of seq_len tokens; the cache read one token at a time."""
    rows = [(int(block_table[t // BLOCK_SIZE]), t % BLOCK_SIZE) for t in range(seq_len)]
    k = torch.stack([key_cache[b, r] for b, r in rows])  # [L, Hk, D]
    v = torch.stack([value_cache[b, r] for b, r in rows])
    group = query.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    q_pos = torch.arange(seq_len - query.shape[0], seq_len)[:, None]
    k_pos = torch.arange(seq_len)[None, :]
    scores = torch.einsum("qhd,khd->hqk", query, k) * scale
    scores = scores + slopes[:, None, None] * (k_pos - q_pos)
    scores = scores.masked_fill(k_pos > q_pos, float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def make_cache(seq_lens, num_kv_heads, head_size):
    """float64 caches and block tables of shuffled, distinct blocks."""
    max_blocks = max(-(-n // BLOCK_SIZE) for n in seq_lens)
    num_blocks = len(seq_lens) * max_blocks
    shape = (num_blocks, BLOCK_SIZE, num_kv_heads, head_size)
    key_cache = torch.randn(shape, dtype=torch.float64)
    value_cache = torch.randn(shape, dtype=torch.float64)
    tables = torch.randperm(num_blocks).view(len(seq_lens), max_blocks).to(torch.int32)
    return key_cache, value_cache, tables


@pytest.mark.parametrize("num_heads,num_kv_heads", [(6, 6), (6, 2), (4, 1)])
def test_prefill_reference_matches_dense(num_heads, num_kv_heads):
    # A fresh prompt, one behind a cached prefix (its queries start mid-sequence), a 1-token one.
    query_lens, seq_lens = [11, 3, 1], [11, 14, 1]
    key_cache, value_cache, tables = make_cache(seq_lens, num_kv_heads, 8)
    query = torch.randn(sum(query_lens), num_heads, 8, dtype=torch.float64)
    starts = torch.tensor([0, *torch.tensor(query_lens).cumsum(0).tolist()], dtype=torch.int32)
    slopes = get_alibi_slopes(num_heads).double()
    out = prefill_attention_ref(query, key_cache, value_cache, tables, starts,
                                torch.tensor(seq_lens, dtype=torch.int32), 0.3, slopes)
    for i, seq_len in enumerate(seq_lens):
        rows = slice(starts[i], starts[i + 1])
        want = dense_attention(query[rows], key_cache, value_cache, tables[i], seq_len, 0.3, slopes)
        torch.testing.assert_close(out[rows], want)


@pytest.mark.parametrize("num_heads,num_kv_heads", [(6, 6), (6, 2), (4, 1)])
def test_decode_reference_matches_dense(num_heads, num_kv_heads):
    seq_lens = [1, 9, 4, 17]  # padded to the longest inside the reference
    key_cache, value_cache, tables = make_cache(seq_lens, num_kv_heads, 8)
    query = torch.randn(len(seq_lens), num_heads, 8, dtype=torch.float64)
    slopes = get_alibi_slopes(num_heads).double()
    out = paged_attention_ref(query, key_cache, value_cache, tables,
                              torch.tensor(seq_lens, dtype=torch.int32), 0.3, slopes)
    for i, seq_len in enumerate(seq_lens):
        want = dense_attention(query[i:i + 1], key_cache, value_cache, tables[i], seq_len, 0.3,
                               slopes)
        torch.testing.assert_close(out[i:i + 1], want)
