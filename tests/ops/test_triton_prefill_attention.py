"""Triton prefill attention over the paged cache against the reference.

Without a GPU the kernel runs in Triton's interpreter (TRITON_INTERPRET=1, set in conftest.py) on
CPU tensors, so CI checks its indexing and masking; on the GPU machine the same tests run compiled,
at full size.
"""
import pytest
import torch

from inference_engine.model_executor.layers.attention import get_alibi_slopes
from inference_engine.ops.attention import paged_attention_ref, prefill_attention_ref
from op_testing import fused_qkv_view

GPU = torch.cuda.is_available()
triton = pytest.importorskip("triton")
from inference_engine.ops.triton_prefill_attention import (paged_attention,  # noqa: E402
                                                           prefill_attention)

DEVICE = "cuda" if GPU else "cpu"
TOLERANCES = {
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.float16: dict(atol=2e-3, rtol=1e-2),
    torch.bfloat16: dict(atol=1.6e-2, rtol=2e-2),
}
# The interpreter runs numpy per program: keep CPU cases few and small. It has no bfloat16.
DTYPES = [torch.float16, torch.bfloat16, torch.float32] if GPU else [torch.float16, torch.float32]
HEAD_SIZES = [64, 80, 96, 112, 128, 256] if GPU else [64, 80]


def make_batch(query_lens, context_lens, num_heads, num_kv_heads, head_size, block_size, dtype):
    """Caches holding context + query tokens per sequence, in shuffled blocks, and the queries."""
    seq_lens = [c + q for c, q in zip(context_lens, query_lens)]
    blocks_per_seq = [-(-n // block_size) for n in seq_lens]
    max_blocks = max(blocks_per_seq)
    num_blocks = sum(blocks_per_seq) + 2
    shape = (num_blocks, block_size, num_kv_heads, head_size)
    key_cache = torch.randn(shape, dtype=dtype, device=DEVICE)
    value_cache = torch.randn(shape, dtype=dtype, device=DEVICE)
    perm = torch.randperm(num_blocks, device=DEVICE).to(torch.int32)
    block_tables = torch.zeros(len(seq_lens), max_blocks, dtype=torch.int32, device=DEVICE)
    used = 0
    for i, n in enumerate(blocks_per_seq):
        block_tables[i, :n] = perm[used:used + n]
        used += n
    query = torch.randn(sum(query_lens), num_heads, head_size, dtype=dtype, device=DEVICE)
    starts = torch.tensor([0, *torch.tensor(query_lens).cumsum(0).tolist()], dtype=torch.int32,
                          device=DEVICE)
    lens = torch.tensor(seq_lens, dtype=torch.int32, device=DEVICE)
    return query, key_cache, value_cache, block_tables, starts, lens


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("head_size", HEAD_SIZES)
@pytest.mark.parametrize("block_size", [16, 32])
@pytest.mark.parametrize("heads", [(4, 4), (4, 1)], ids=["mha", "mqa"])
def test_prefill_attention(dtype, head_size, block_size, heads):
    # A fresh prompt, a prompt behind a cached prefix (prefix caching / chunked prefill), a long one.
    query_lens, context_lens = ([70, 5, 17], [0, 40, 0]) if not GPU else ([300, 7, 1000], [0, 700, 33])
    batch = make_batch(query_lens, context_lens, *heads, head_size, block_size, dtype)
    scale = head_size ** -0.5
    out = prefill_attention(*batch, scale)
    ref = prefill_attention_ref(*(t.double() if t.is_floating_point() else t for t in batch), scale)
    torch.testing.assert_close(out.double(), ref, **TOLERANCES[dtype])


def test_prefill_attention_alibi():
    batch = make_batch([33, 4], [0, 20], 4, 2, 64, 16, torch.float16)
    slopes = torch.tensor([0.5, 0.25, 0.125, 0.0625], device=DEVICE)
    out = prefill_attention(*batch, 0.125, slopes)
    ref = prefill_attention_ref(*(t.double() if t.is_floating_point() else t for t in batch), 0.125,
                                slopes.double())
    torch.testing.assert_close(out.double(), ref, **TOLERANCES[torch.float16])


def test_prefill_attention_bloom_slopes():
    """Bloom's slopes for 6 heads (4 + 2: no power of two), float32, behind a cached prefix."""
    batch = make_batch([21, 6], [0, 30], 6, 6, 64, 16, torch.float32)
    slopes = get_alibi_slopes(6).to(DEVICE)
    out = prefill_attention(*batch, 0.125, slopes)
    ref = prefill_attention_ref(*(t.double() if t.is_floating_point() else t for t in batch), 0.125,
                                slopes.double())
    torch.testing.assert_close(out.double(), ref, **TOLERANCES[torch.float32])


def test_decode_through_prefill_kernel_alibi():
    query, key_cache, value_cache, block_tables, _, seq_lens = make_batch(
        [1, 1, 1], [50, 3, 90], 6, 2, 64, 16, torch.float32)
    slopes = get_alibi_slopes(6).to(DEVICE)
    out = paged_attention(query, key_cache, value_cache, block_tables, seq_lens, 0.125, slopes)
    ref = paged_attention_ref(query.double(), key_cache.double(), value_cache.double(), block_tables,
                              seq_lens, 0.125, slopes.double())
    torch.testing.assert_close(out.double(), ref, **TOLERANCES[torch.float32])


def test_decode_through_prefill_kernel():
    """The Triton fallback of paged_attention: one query token per sequence."""
    query, key_cache, value_cache, block_tables, _, seq_lens = make_batch(
        [1, 1, 1], [50, 3, 90], 8, 2, 64, 16, torch.float16)
    out = paged_attention(query, key_cache, value_cache, block_tables, seq_lens, 0.125)
    ref = paged_attention_ref(query.double(), key_cache.double(), value_cache.double(), block_tables,
                              seq_lens, 0.125)
    torch.testing.assert_close(out.double(), ref, **TOLERANCES[torch.float16])


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="needs a GPU")
def test_table_width_and_batch_size_compile_no_new_variant():
    """Each step's block table has the width of its longest sequence, and the batch size changes:
    neither may make Triton compile another variant of the kernel mid-run."""
    from inference_engine.ops.triton_prefill_attention import _prefill_kernel
    kernels = _prefill_kernel.device_caches[torch.cuda.current_device()][0]

    def run(query_lens, context_lens):
        batch = make_batch(query_lens, context_lens, 4, 1, 128, 16, torch.bfloat16)
        prefill_attention(*batch, 128 ** -0.5)
        torch.cuda.synchronize()

    run([20, 30], [0, 236])  # a table of 16 blocks
    compiled = len(kernels)
    run([20], [0])  # 2 blocks, one sequence
    run([5, 6, 7], [0, 250, 300])  # 20 blocks, three sequences
    assert len(kernels) == compiled


def test_tile_starts_follow_an_in_place_change_of_query_start_loc():
    """The tile starts are kept for the last query_start_loc tensor (every layer of a step passes
    the same one); writing into that tensor must not reuse the stale ones."""
    first = make_batch([70, 5], [0, 10], 4, 2, 64, 16, torch.float32)
    second = make_batch([5, 70], [10, 0], 4, 2, 64, 16, torch.float32)
    starts = first[4]
    for batch in (first, first):  # the second call reuses the kept tile starts
        torch.testing.assert_close(prefill_attention(*batch, 0.125),
                                   prefill_attention_ref(*batch, 0.125),
                                   **TOLERANCES[torch.float32])
    starts.copy_(second[4])  # 70 + 5 tokens become 5 + 70: other tiles, the same tensor
    batch = (*second[:4], starts, second[5])
    torch.testing.assert_close(prefill_attention(*batch, 0.125),
                               prefill_attention_ref(*batch, 0.125), **TOLERANCES[torch.float32])


def test_tile_starts_kept_for_inference_tensors():
    """The engine runs in inference mode, whose tensors track no version: the tile starts are
    kept by identity, and a new query_start_loc (the next step's) gets its own."""
    with torch.inference_mode():
        for lens in ([70, 5], [5, 70]):
            batch = make_batch(lens, [3, 4], 4, 2, 64, 16, torch.float32)
            for _ in range(2):
                torch.testing.assert_close(prefill_attention(*batch, 0.125),
                                           prefill_attention_ref(*batch, 0.125),
                                           **TOLERANCES[torch.float32])


def test_prefill_and_decode_write_into_out_from_a_strided_query():
    """As a mixed step calls them: the query rows a view of the fused qkv output, each kernel
    writing its rows of one shared output, the other rows left alone."""
    dtype = torch.float16
    batch = make_batch([20, 9], [0, 30], 4, 2, 64, 16, dtype)
    query = batch[0]
    strided = fused_qkv_view(query, num_kv_heads=2)
    out = torch.full((query.shape[0] + 3, 4, 64), 5.0, dtype=dtype, device=DEVICE)
    prefill_attention(strided, *batch[1:], 0.125, out=out[3:])
    torch.testing.assert_close(out[3:], prefill_attention(*batch, 0.125), atol=0, rtol=0)
    assert bool((out[:3] == 5.0).all())
    key_cache, value_cache, block_tables, _, lens = batch[1:]
    decode_out = torch.zeros(2, 4, 64, dtype=dtype, device=DEVICE)
    paged_attention(strided[:2], key_cache, value_cache, block_tables, lens, 0.125, out=decode_out)
    torch.testing.assert_close(decode_out, paged_attention(query[:2].contiguous(), key_cache,
                                                           value_cache, block_tables, lens, 0.125),
                               atol=0, rtol=0)
