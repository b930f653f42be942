"""An FP8 (float8_e4m3fn) KV cache: the cache writes and the attention kernels that read it,
against the references (which cast with saturation and read by converting to the query's dtype).

On the CPU the public ops take the references (the CPU kernels keep 16/32-bit caches); on CUDA
the writes convert in the kernels, decode runs the tensor-core kernel and prefill the Triton one.
"""
import pytest
import torch

from inference_engine import ops
from inference_engine.ops import _compiled
from inference_engine.envs import PAGED_ATTENTION_KERNEL
from inference_engine.ops.attention import (FP8_DTYPE, FP8_MAX, paged_attention_ref,
                                            prefill_attention_ref, reshape_and_cache_ref,
                                            to_cache_dtype)
from inference_engine.ops.rotary import rotary_and_cache_ref
from op_testing import DEVICES, context_slots, require_compiled
from test_paged_attention import TOLERANCES, make_inputs

HALF_DTYPES = [pytest.param(torch.float16, id="fp16"), pytest.param(torch.bfloat16, id="bf16")]
HEADS = [(8, 8), (8, 2), (8, 1), (6, 2), (32, 8)]
cuda_mma = pytest.mark.skipif(
    not torch.cuda.is_available() or torch.version.hip is not None
    or torch.cuda.get_device_capability() < (8, 0), reason="the tensor-core decode kernel: CUDA sm_80+")


def test_to_cache_dtype_rounds_and_saturates():
    x = torch.tensor([0.0, 1.0, 1.0625, 1.1875, -3.3, 447.0, 449.0, 1000.0, -1e6, 2.0 ** -9])
    fp8 = to_cache_dtype(x, FP8_DTYPE)
    assert fp8.dtype == FP8_DTYPE
    # 1.0625 lies halfway between 1 and 1.125: to even; 1.1875 halfway up to 1.25.
    assert fp8.float().tolist() == [0.0, 1.0, 1.0, 1.25, -3.25, 448.0, 448.0, FP8_MAX, -FP8_MAX,
                                    2.0 ** -9]
    assert to_cache_dtype(x, torch.bfloat16).dtype == torch.bfloat16


def _fp8_caches(num_blocks, block_size, num_kv_heads, head_size, device):
    shape = (num_blocks, block_size, num_kv_heads, head_size)
    return tuple(to_cache_dtype(torch.randn(shape, device=device), FP8_DTYPE) for _ in range(2))


def _bytes_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.view(torch.uint8), b.view(torch.uint8))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF_DTYPES + [pytest.param(torch.float32, id="fp32")])
@pytest.mark.parametrize("head_size", [64, 80, 128])
def test_reshape_and_cache_fp8(device, dtype, head_size):
    """Keys and values land rounded and saturated exactly as the reference stores them; padding
    slots and the other rows are left alone."""
    require_compiled("reshape_and_cache", device)
    tokens, num_kv_heads, num_blocks, block_size = 42, 4, 8, 16
    key_cache, value_cache = _fp8_caches(num_blocks, block_size, num_kv_heads, head_size, device)
    slots = torch.randperm(num_blocks * block_size, device=device)[:tokens]
    slots[::5] = -1
    kv = torch.randn(tokens, 2, num_kv_heads, head_size, dtype=dtype, device=device) * 200
    key, value = kv[:, 0], kv[:, 1]  # strided rows, as from the fused projection; some > 448
    ref_key_cache, ref_value_cache = key_cache.clone(), value_cache.clone()
    ops.reshape_and_cache(key, value, key_cache, value_cache, slots)
    reshape_and_cache_ref(key, value, ref_key_cache, ref_value_cache, slots)
    assert _bytes_equal(key_cache, ref_key_cache) and _bytes_equal(value_cache, ref_value_cache)
    assert key_cache.float().abs().max() == FP8_MAX


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("head_size, partial", [(128, False), (64, True)])
def test_rotary_and_cache_fp8(device, dtype, head_size, partial):
    """The fused kernel stores its rotated keys as FP8 (rounded to the step's dtype first, as the
    reference's rotation is) and the values converted; the query comes back as rotary gives it."""
    require_compiled("rotary_and_cache", device)
    from test_rotary import rotary_and_cache_inputs
    tokens, q_heads, kv_heads, blocks, block_size = 11, 8, 2, 6, 4
    rot_dim = head_size // 2 if partial else head_size
    positions, cos_sin, query, key, value, slots = rotary_and_cache_inputs(
        tokens, q_heads, kv_heads, head_size, rot_dim, blocks * block_size, dtype, device)
    k_cache, v_cache = _fp8_caches(blocks, block_size, kv_heads, head_size, device)
    k_ref, v_ref = k_cache.clone(), v_cache.clone()
    q_out = ops.rotary_and_cache(positions, query, key, value, k_cache, v_cache, slots, head_size,
                                 cos_sin, True)
    q_ref = rotary_and_cache_ref(positions, query, key, value, k_ref, v_ref, slots, head_size,
                                 cos_sin, True)
    torch.testing.assert_close(q_out, q_ref, atol=1.6e-2, rtol=1.6e-2)
    assert _bytes_equal(v_cache, v_ref)
    # The keys' rotation differs from the reference's within the rotary test's tolerance (the
    # reference rounds its products to the step's dtype), and FP8 may round that one step apart.
    torch.testing.assert_close(k_cache.float(), k_ref.float(), atol=1.6e-2, rtol=0.125)


def _attention_inputs(num_seqs, heads, head_size, block_size, max_seq_len, dtype, device):
    query, key_cache, value_cache, block_tables, seq_lens = make_inputs(
        num_seqs, *heads, head_size, block_size, max_seq_len, dtype, device)
    return (query, to_cache_dtype(key_cache, FP8_DTYPE), to_cache_dtype(value_cache, FP8_DTYPE),
            block_tables, seq_lens)


def _reference(query, key_cache, value_cache, block_tables, seq_lens, scale, slopes=None):
    return paged_attention_ref(query.double(), key_cache, value_cache, block_tables, seq_lens,
                               scale, None if slopes is None else slopes.double())


@pytest.mark.gpu
@cuda_mma
@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("heads", HEADS, ids=[f"{h}q{k}kv" for h, k in HEADS])
@pytest.mark.parametrize("block_size", [16, 32])
@pytest.mark.parametrize("head_size", [64, 128])
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_paged_attention_fp8_tensor_cores(version, heads, block_size, head_size, dtype):
    """The tensor-core kernel on FP8 rows (its permuted head dimensions, fp16 mma) against the
    reference over the same FP8 values, v1 and v2, with and without ALiBi."""
    from test_paged_attention import run_kernel
    from inference_engine.model_executor.layers.attention import get_alibi_slopes
    inputs = _attention_inputs(3, heads, head_size, block_size, 1100, dtype, "cuda")
    scale = head_size ** -0.5
    for slopes in (None, get_alibi_slopes(heads[0]).cuda()):
        out = run_kernel(version, *inputs, scale, slopes)
        torch.testing.assert_close(out.double(), _reference(*inputs, scale, slopes),
                                   **TOLERANCES[dtype])


@pytest.mark.gpu
@cuda_mma
@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_paged_attention_fp8_long_context_and_many_sequences(dtype):
    """A 16k-token context (v2, 32 partitions) and a batch large enough for the op to take v1."""
    for num_seqs, max_len in ((3, 16384), (40, 2000)):
        inputs = _attention_inputs(num_seqs, (32, 8), 128, 16, max_len, dtype, "cuda")
        out = ops.paged_attention(*inputs, 128 ** -0.5)
        torch.testing.assert_close(out.double(), _reference(*inputs, 128 ** -0.5),
                                   **TOLERANCES[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("head_size", [64, 80])
def test_paged_attention_fp8_other_backends(monkeypatch, device, head_size):
    """Where the tensor-core kernel does not run (the CPU, other head sizes, the CUDA-core kernel
    asked for), the public op reads an FP8 cache with the next backend instead of failing."""
    if device == "cuda":
        monkeypatch.setenv(PAGED_ATTENTION_KERNEL, "simt")
    inputs = _attention_inputs(3, (8, 2), head_size, 16, 300, torch.float16, device)
    assert not _compiled.paged_attention_takes(inputs[0], inputs[1])
    out = ops.paged_attention(*inputs, head_size ** -0.5)
    torch.testing.assert_close(out.double(), _reference(*inputs, head_size ** -0.5),
                               **TOLERANCES[torch.float16])


@pytest.mark.parametrize("device", DEVICES)
def test_paged_attention_fp8_ignores_unwritten_slots(device):
    """Slots past each context hold NaN bytes (0x7f: common in an unwritten FP8 cache); decode
    attention must not read them into its output (the reference pads contexts to the longest,
    where a masked score still multiplies its value)."""
    query, key_cache, value_cache, block_tables, seq_lens = _attention_inputs(
        4, (8, 2), 128, 16, 300, torch.bfloat16, device)
    seq_lens[1:] = torch.tensor([1, 17, 150], dtype=seq_lens.dtype)
    clean = [cache.clone() for cache in (key_cache, value_cache)]
    blocks, slots, _ = context_slots(block_tables, seq_lens, 16)
    written = torch.zeros(key_cache.shape[:2], dtype=torch.bool, device=device)
    written[blocks, slots] = True
    for cache in (key_cache, value_cache):
        cache.view(torch.uint8)[~written] = 0x7F
    out = ops.paged_attention(query, key_cache, value_cache, block_tables, seq_lens, 128 ** -0.5)
    assert bool(out.isfinite().all())
    torch.testing.assert_close(out.double(), _reference(query, *clean, block_tables, seq_lens,
                                                        128 ** -0.5), **TOLERANCES[torch.bfloat16])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", HALF_DTYPES)
@pytest.mark.parametrize("head_size", [64, 128])
def test_prefill_attention_fp8(dtype, head_size):
    """Triton's prefill over an FP8 cache: prompts behind cached prefixes, and a plain prompt."""
    from test_triton_prefill_attention import make_batch
    query, key_cache, value_cache, tables, starts, lens = make_batch(
        [37, 1, 130], [0, 70, 300], 8, 2, head_size, 16, dtype)
    key_cache, value_cache = (to_cache_dtype(c, FP8_DTYPE) for c in (key_cache, value_cache))
    scale = head_size ** -0.5
    out = ops.prefill_attention(query, key_cache, value_cache, tables, starts, lens, scale)
    ref = prefill_attention_ref(query.double(), key_cache, value_cache, tables, starts, lens, scale)
    torch.testing.assert_close(out.double(), ref, atol=2e-2, rtol=2e-2)

