"""paged_attention_v1 / v2 kernels against the reference, computed in float64.

Parametrized over dtype x head size x block size x head grouping (multi-head, grouped-query,
multi-query) x version; sequence lengths are random and span several v2 partitions.
"""
import math

import pytest
import torch

from inference_engine.model_executor.layers.attention import get_alibi_slopes
from inference_engine.ops import paged_attention
from inference_engine.envs import PAGED_ATTENTION_KERNEL
from inference_engine.ops.attention import paged_attention_ref
from op_testing import DEVICES, DTYPES, context_slots, fused_qkv_view, require_compiled

HEAD_SIZES = [64, 80, 96, 112, 128, 256]
HEADS = [(8, 8), (8, 2), (8, 1), (6, 2)]  # (query heads, KV heads); 6/2 makes a group of 3
PARTITION_SIZE = 512
# Softmax-weighted sums of random values: the error is one output rounding plus the kernels'
# reduced-precision steps (packed fp16 FMA on the CUDA cores; on the tensor cores, probabilities
# rounded to the input dtype before p.v, as transformers' eager attention does).
TOLERANCES = {
    torch.float32: dict(atol=1e-4, rtol=1e-4),
    torch.float16: dict(atol=3e-3, rtol=1e-2),
    torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
}


def make_inputs(num_seqs, num_heads, num_kv_heads, head_size, block_size, max_seq_len, dtype, device):
    """Random query, caches, block tables (random, distinct blocks) and seq_lens in [1, max_seq_len]."""
    max_blocks = math.ceil(max_seq_len / block_size)
    num_blocks = num_seqs * max_blocks + 3
    cache_shape = (num_blocks, block_size, num_kv_heads, head_size)
    key_cache = torch.randn(cache_shape, dtype=dtype, device=device)
    value_cache = torch.randn(cache_shape, dtype=dtype, device=device)
    query = torch.randn(num_seqs, num_heads, head_size, dtype=dtype, device=device)
    block_tables = torch.randperm(num_blocks, device=device)[:num_seqs * max_blocks]
    block_tables = block_tables.view(num_seqs, max_blocks).to(torch.int32)
    seq_lens = torch.randint(1, max_seq_len + 1, (num_seqs,), dtype=torch.int32, device=device)
    seq_lens[0] = max_seq_len
    return query, key_cache, value_cache, block_tables, seq_lens


def run_kernel(version, query, key_cache, value_cache, block_tables, seq_lens, scale, alibi_slopes):
    """Calls paged_attention_v1 or _v2 directly (the dispatch heuristic would pick one)."""
    out = torch.empty_like(query)
    ops = torch.ops.inference_engine
    if version == "v1":
        ops.paged_attention_v1(out, query, key_cache, value_cache, block_tables, seq_lens,
                              scale, alibi_slopes)
        return out
    num_seqs, num_heads, head_size = query.shape
    partitions = math.ceil(block_tables.shape[1] * key_cache.shape[1] / PARTITION_SIZE)
    stats = torch.empty(2, num_seqs, num_heads, partitions, device=query.device)
    tmp_out = torch.empty(num_seqs, num_heads, partitions, head_size, dtype=query.dtype,
                          device=query.device)
    ops.paged_attention_v2(out, stats[0], stats[1], tmp_out, query, key_cache, value_cache,
                           block_tables, seq_lens, scale, alibi_slopes, PARTITION_SIZE)
    return out


def check(version, dtype, head_size, block_size, heads, device, slopes=None, num_seqs=3,
          max_seq_len=1100):
    """`slopes` (float32 [num_heads], any device) turns ALiBi on."""
    require_compiled(f"paged_attention_{version}", device)
    num_heads, num_kv_heads = heads
    inputs = make_inputs(num_seqs, num_heads, num_kv_heads, head_size, block_size, max_seq_len,
                         dtype, device)
    scale = head_size ** -0.5
    slopes = None if slopes is None else slopes.to(device)
    out = run_kernel(version, *inputs, scale, slopes)
    query, key_cache, value_cache, block_tables, seq_lens = inputs
    ref = paged_attention_ref(query.double(), key_cache.double(), value_cache.double(), block_tables,
                              seq_lens, scale, None if slopes is None else slopes.double())
    torch.testing.assert_close(out.double(), ref, **TOLERANCES[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("heads", HEADS, ids=[f"{h}q{k}kv" for h, k in HEADS])
@pytest.mark.parametrize("block_size", [16, 32])
@pytest.mark.parametrize("head_size", HEAD_SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_paged_attention(device, version, heads, block_size, head_size, dtype):
    check(version, dtype, head_size, block_size, heads, device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_paged_attention_alibi(device, version, dtype):
    check(version, dtype, 128, 16, (8, 2), device, slopes=torch.rand(8) * 0.1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("heads", [(6, 6), (12, 4)], ids=["6q6kv", "12q4kv"])
def test_paged_attention_bloom_slopes(device, version, heads):
    """Bloom's slopes for head counts that are no power of two; steep enough (up to 0.5 per token
    for 6 heads) that an off-by-one position would show."""
    check(version, torch.float32, 64, 16, heads, device, slopes=get_alibi_slopes(heads[0]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_paged_attention_many_heads_per_kv_head(device, dtype):
    """32 query heads on one KV head: the GPU kernel splits the group over several thread blocks."""
    check("v2", dtype, 128, 16, (32, 1), device, num_seqs=2)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_paged_attention_long_context(dtype):
    """A 16k-token context: v2 with 32 partitions."""
    check("v2", dtype, 128, 16, (32, 8), "cuda", num_seqs=3, max_seq_len=16384)


@pytest.mark.gpu
@pytest.mark.skipif(torch.version.hip is not None, reason="ROCm runs the CUDA-core kernel only")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_paged_attention_v1_long_context_on_tensor_cores(dtype):
    """The tensor-core kernel keeps no logits in shared memory: v1 takes a 16k-token context."""
    if torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("the tensor-core kernel needs sm_80")
    check("v1", dtype, 128, 16, (32, 8), "cuda", num_seqs=3, max_seq_len=16384)


@pytest.mark.gpu
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("heads", HEADS, ids=[f"{h}q{k}kv" for h, k in HEADS])
@pytest.mark.parametrize("head_size", [64, 128])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_paged_attention_cuda_core_kernel(monkeypatch, version, heads, head_size, dtype):
    """Where the tensor-core kernel takes over (sm_80+, 16-bit, head size 64 or 128), the CUDA-core
    kernel (ROCm's, and the one INFERENCE_ENGINE_PAGED_ATTENTION_KERNEL=simt picks) stays right."""
    monkeypatch.setenv(PAGED_ATTENTION_KERNEL, "simt")
    check(version, dtype, head_size, 16, heads, "cuda")
    check(version, dtype, head_size, 32, heads, "cuda", slopes=get_alibi_slopes(heads[0]))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("head_size", [16, 32, 128])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_paged_attention_any_head_size(device, head_size, dtype):
    """The public op takes head sizes the GPU kernel has no instance for (tiny test models: 16,
    32): it runs the next backend, Triton, there instead of failing."""
    require_compiled("paged_attention_v1", device)
    inputs = make_inputs(3, 8, 2, head_size, 16, 300, dtype, device)
    scale = head_size ** -0.5
    out = paged_attention(*inputs, scale)
    query, key_cache, value_cache, block_tables, seq_lens = inputs
    ref = paged_attention_ref(query.double(), key_cache.double(), value_cache.double(), block_tables,
                              seq_lens, scale)
    torch.testing.assert_close(out.double(), ref, **TOLERANCES[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_paged_attention_query_rows_at_a_stride(device, version, dtype):
    """Both kernels read the query in place from the fused qkv output (no copy first)."""
    require_compiled(f"paged_attention_{version}", device)
    inputs = make_inputs(5, 8, 2, 128, 16, 700, dtype, device)
    scale = 128 ** -0.5
    strided = fused_qkv_view(inputs[0], num_kv_heads=2)
    assert not strided.is_contiguous()
    torch.testing.assert_close(run_kernel(version, strided, *inputs[1:], scale, None),
                               run_kernel(version, *inputs, scale, None), atol=0, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("num_seqs", [3, 300], ids=["v2", "v1"])  # many sequences take v1
def test_paged_attention_writes_into_out(device, dtype, num_seqs):
    """The public op writes into given rows of a larger buffer (a mixed step's output) and
    leaves the other rows alone."""
    require_compiled("paged_attention_v1", device)
    inputs = make_inputs(num_seqs, 8, 2, 128, 16, 700, dtype, device)
    scale = 128 ** -0.5
    buffer = torch.full((num_seqs + 4, 8, 128), 7.0, dtype=dtype, device=device)
    result = paged_attention(fused_qkv_view(inputs[0], 2), *inputs[1:], scale, out=buffer[4:])
    assert result.data_ptr() == buffer[4:].data_ptr()
    torch.testing.assert_close(buffer[4:], paged_attention(*inputs, scale), atol=0, rtol=0)
    assert bool((buffer[:4] == 7.0).all())
    ref_out = torch.zeros_like(inputs[0])
    paged_attention_ref(*inputs, scale, out=ref_out)
    torch.testing.assert_close(ref_out, paged_attention_ref(*inputs, scale))


@pytest.mark.parametrize("device", DEVICES)
def test_paged_attention_query_off_16_byte_alignment(device):
    """A query that starts mid-vector (a view at an odd offset) is copied first, not misread."""
    require_compiled("paged_attention_v1", device)
    inputs = make_inputs(3, 8, 2, 128, 16, 300, torch.bfloat16, device)
    flat = torch.empty(inputs[0].numel() + 1, dtype=torch.bfloat16, device=device)
    shifted = flat[1:].view(inputs[0].shape)
    shifted.copy_(inputs[0])
    assert shifted.data_ptr() % 16
    torch.testing.assert_close(paged_attention(shifted, *inputs[1:], 128 ** -0.5),
                               paged_attention(*inputs, 128 ** -0.5), atol=0, rtol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("rise", [0.02, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_paged_attention_scores_rising_along_the_context(device, version, rise, dtype):
    """Scores that grow along the context (by `rise` a token, plus noise), so that a running
    max keeps moving: the tensor-core kernel rescales its sums only when the max passes the one
    they were taken against by 2^8, so between rescales its probabilities exceed 1; here it
    rescales every ~17 chunks (0.02) or every chunk (1.0, a near one-hot softmax)."""
    require_compiled(f"paged_attention_{version}", device)
    generator = torch.Generator().manual_seed(0)
    query, key_cache, value_cache, block_tables, seq_lens = make_inputs(
        3, 8, 2, 128, 16, 1100, dtype, device)
    direction = torch.nn.functional.normalize(torch.randn(128, generator=generator), dim=0)
    query = (direction * 128 ** 0.5).expand(query.shape).to(dtype=dtype, device=device).contiguous()
    # Token t of each sequence: q.k * scale = rise * t + noise (keys along the query's direction).
    keys = 0.3 * torch.randn(key_cache.shape, generator=generator, dtype=torch.float64)
    blocks, slots, positions = (index.cpu() for index in context_slots(block_tables, seq_lens, 16))
    keys[blocks, slots] += (rise * positions)[:, None, None] * direction.double()
    key_cache = keys.to(dtype=dtype, device=device)
    scale = 128 ** -0.5
    out = run_kernel(version, query, key_cache, value_cache, block_tables, seq_lens, scale, None)
    ref = paged_attention_ref(query.double(), key_cache.double(), value_cache.double(),
                              block_tables, seq_lens, scale)
    torch.testing.assert_close(out.double(), ref, **TOLERANCES[dtype])
