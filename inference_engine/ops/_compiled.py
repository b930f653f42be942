"""Wrappers that give the compiled kernels (torch.ops.inference_engine) the references' signatures.

The kernels write into outputs allocated here and take index tensors in fixed dtypes (int64 slots
and positions, int32 block tables and lengths); conversions below are no-ops when the caller
already passes those.
"""
import functools

import torch

from inference_engine import envs
from inference_engine.ops.attention import FP8_DTYPE, to_cache_dtype
from inference_engine.ops.layernorm import rms_norm_ref

# Resolved on each call, so importing this module does not need the extension to be built.
_ops = torch.ops.inference_engine

# Tokens per partition of paged_attention_v2 (the kernels take it as an argument): 512, halved down
# to 128 while the grid would have fewer than _MIN_V2_BLOCKS (sequence, KV head, partition) blocks,
# so that a few long sequences still fill the GPU. The block table's width stands for the context
# (a CUDA graph's table spans the model's whole length), so the count overestimates the blocks that
# work. The CPU keeps 512 (its tasks are (sequence, KV head, partition) triples over a few cores).
# The thresholds here were measured: docs/performance.md, "Defaults and the figures behind them".
PARTITION_SIZE = 512
_MIN_PARTITION_SIZE = 128
_MIN_V2_BLOCKS = {"cuda": 2048, "cpu": 512}
# v1 (one thread block per sequence and KV head, no reduce) only for batches this large: with
# fewer, the longest context's block sets the time. Per kernel: "cuda" the CUDA-core one,
# "cuda_mma" the tensor-core one (from 14 sequences x 8 KV heads: it stages K and V through shared
# memory), "cuda_mma_fp8" the same over an FP8 cache (whose blocks stream half the bytes), "cpu".
_V1_MIN_SEQ_HEADS = {"cuda": 2048, "cuda_mma": 112, "cuda_mma_fp8": 192, "cpu": 512}
# The CUDA-core kernel's v1 keeps a whole context's logits in shared memory (the CPU's in a buffer
# of the same size); beyond this many (tokens x query heads per KV head, at most 8 per thread
# block) it switches to v2.
_V1_MAX_LOGITS = 8192
# Where csrc/gpu/paged_attention_kernels.cu (use_mma_kernel) runs the tensor-core kernel: CUDA
# sm_80+, 16-bit, these head sizes, unless INFERENCE_ENGINE_PAGED_ATTENTION_KERNEL=simt.
_MMA_HEAD_SIZES = (64, 128)
# Head sizes the GPU decode kernel is instantiated for (csrc/gpu/paged_attention_kernels.cu); a
# model with another one decodes with the next backend there, Triton (the CPU kernel takes any).
GPU_HEAD_SIZES = (64, 80, 96, 112, 128, 256)


# The few-row matmul (csrc/gpu/skinny_matmul_kernels.cu): up to this many rows, 16-bit, the
# weight's rows a multiple of 16 and its columns of 128, CUDA sm_80+; it reads the weights faster
# than cuBLAS there. INFERENCE_ENGINE_SKINNY_MATMUL=0 turns it off.
SKINNY_MAX_ROWS = 8


def skinny_matmul_takes(x: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor | None = None) -> bool:
    """Whether the compiled few-row matmul has a kernel for this call."""
    return (x.is_cuda and not envs.is_off(envs.SKINNY_MATMUL) and x.dim() == 2
            and 1 <= x.shape[0] <= SKINNY_MAX_ROWS and x.dtype in (torch.float16, torch.bfloat16)
            and weight.dtype == x.dtype and weight.shape[0] % 16 == 0 and weight.shape[1] % 128 == 0
            and torch.version.hip is None and _has_tensor_core_mma(x.device.index))


def skinny_matmul(x: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    out = torch.empty(x.shape[0], weight.shape[0], dtype=x.dtype, device=x.device)
    _ops.skinny_matmul(out, x if x.stride(1) == 1 else x.contiguous(), weight.contiguous(),
                       None if bias is None else bias.contiguous())
    return out


def greedy_sample(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    tokens = torch.empty(logits.shape[0], dtype=torch.int64, device=logits.device)
    logprobs = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
    _ops.greedy_sample(tokens, logprobs, logits)
    return tokens, logprobs


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if weight.dtype != x.dtype:  # the reference's type promotion decides the output dtype
        return rms_norm_ref(x, weight, eps)
    x = x.contiguous()
    out = torch.empty_like(x)
    _ops.rms_norm(out, x, weight.contiguous(), eps)
    return out


def fused_add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    if weight.dtype != x.dtype or residual.dtype != x.dtype:
        residual = residual + x
        return rms_norm_ref(residual, weight, eps), residual
    x, residual = x.contiguous(), residual.contiguous()
    out, residual_out = torch.empty_like(x), torch.empty_like(x)
    _ops.fused_add_rms_norm(out, residual_out, x, residual, weight.contiguous(), eps)
    return out, residual_out


def rotary_embedding(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                     head_size: int, cos_sin_cache: torch.Tensor,
                     is_neox: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if cos_sin_cache.dtype not in (torch.float32, query.dtype):
        cos_sin_cache = cos_sin_cache.float()
    query_out = torch.empty(query.shape, dtype=query.dtype, device=query.device)
    key_out = torch.empty(key.shape, dtype=key.dtype, device=key.device)
    _ops.rotary_embedding(query_out, key_out, positions.long().contiguous(), query, key, head_size,
                          cos_sin_cache.contiguous(), is_neox)
    return query_out, key_out


def rotary_and_cache(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                     slot_mapping: torch.Tensor, head_size: int, cos_sin_cache: torch.Tensor,
                     is_neox: bool) -> torch.Tensor:
    rows = (key.shape[0], -1, head_size)
    # The kernel stores keys as it rotates them: in their own dtype, or FP8 on a GPU.
    if key_cache.dtype != query.dtype and not _gpu_fp8(key_cache):
        query, key = rotary_embedding(positions, query, key, head_size, cos_sin_cache, is_neox)
        reshape_and_cache(key.view(rows), value.view(rows), key_cache, value_cache, slot_mapping)
        return query
    if cos_sin_cache.dtype not in (torch.float32, query.dtype):
        cos_sin_cache = cos_sin_cache.float()
    query_out = torch.empty(query.shape, dtype=query.dtype, device=query.device)
    _ops.rotary_and_cache(query_out, key_cache, value_cache, positions.long().contiguous(), query,
                          key.view(rows), value.view(rows), slot_mapping.long().contiguous(),
                          head_size, cos_sin_cache.contiguous(), is_neox)
    return query_out


def _act_and_mul(op, x: torch.Tensor) -> torch.Tensor:
    x = x.contiguous()
    out = torch.empty((*x.shape[:-1], x.shape[-1] // 2), dtype=x.dtype, device=x.device)
    op(out, x)
    return out


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    return _act_and_mul(_ops.silu_and_mul, x)


def gelu_and_mul(x: torch.Tensor) -> torch.Tensor:
    return _act_and_mul(_ops.gelu_and_mul, x)


def gelu_tanh_and_mul(x: torch.Tensor) -> torch.Tensor:
    return _act_and_mul(_ops.gelu_tanh_and_mul, x)


def _gpu_fp8(cache: torch.Tensor) -> bool:
    """An FP8 cache on a GPU, whose kernels convert (and saturate) as they store."""
    return cache.is_cuda and cache.dtype == FP8_DTYPE


def reshape_and_cache(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor,
                      value_cache: torch.Tensor, slot_mapping: torch.Tensor) -> None:
    if not _gpu_fp8(key_cache):  # the CPU kernel copies bytes
        key, value = to_cache_dtype(key, key_cache.dtype), to_cache_dtype(value, value_cache.dtype)
    _ops.reshape_and_cache(key, value, key_cache, value_cache, slot_mapping.long().contiguous())


def copy_blocks(key_caches: list[torch.Tensor], value_caches: list[torch.Tensor],
                block_mapping: torch.Tensor) -> None:
    if not key_caches:
        return
    mapping = block_mapping.to(device=key_caches[0].device, dtype=torch.long).contiguous()
    _ops.copy_blocks(key_caches, value_caches, mapping)


def swap_blocks(src: torch.Tensor, dst: torch.Tensor, block_mapping: torch.Tensor) -> None:
    _ops.swap_blocks(src, dst, block_mapping.to(device="cpu", dtype=torch.long).contiguous())


@functools.cache
def _has_tensor_core_mma(device_index: int | None) -> bool:
    return torch.cuda.get_device_capability(device_index) >= (8, 0)


def decode_kernel(query: torch.Tensor, key_cache: torch.Tensor | None = None) -> str:
    """Which decode kernel the compiled op runs for this query: "cuda_mma", "cuda" or "cpu", with
    "_fp8" appended when `key_cache` (if given) is FP8, as use_v1() keys its thresholds."""
    suffix = "_fp8" if key_cache is not None and key_cache.dtype == FP8_DTYPE else ""
    device = query.device
    if device.type != "cuda":
        return device.type + suffix
    if (torch.version.hip is None and query.dtype in (torch.float16, torch.bfloat16)
            and query.shape[-1] in _MMA_HEAD_SIZES and envs.get(envs.PAGED_ATTENTION_KERNEL) != "simt"
            and _has_tensor_core_mma(device.index)):
        return "cuda_mma" + suffix
    return "cuda" + suffix


def use_v1(num_seqs: int, num_kv_heads: int, queries_per_kv: int, max_context: int,
           kernel: str = "cuda") -> bool:
    """v1 (one pass per sequence) when one partition covers the context or when there are enough
    (sequence, KV head) pairs to fill the device (and, except on the tensor cores, the context's
    logits fit in the kernel's buffer). `kernel` as decode_kernel() names it."""
    if max_context <= PARTITION_SIZE:
        return True
    if not kernel.startswith("cuda_mma") and max_context * min(queries_per_kv, 8) > _V1_MAX_LOGITS:
        return False
    return num_seqs * num_kv_heads >= _V1_MIN_SEQ_HEADS.get(kernel, 512)


def partition_size(num_seqs: int, num_kv_heads: int, max_context: int,
                   device_type: str = "cuda") -> int:
    """paged_attention_v2's partition size for this batch (see PARTITION_SIZE)."""
    size, min_blocks = PARTITION_SIZE, _MIN_V2_BLOCKS.get(device_type, 512)
    while (size > _MIN_PARTITION_SIZE
           and num_seqs * num_kv_heads * -(-max_context // size) < min_blocks):
        size //= 2
    return size


def paged_attention_takes(query: torch.Tensor, key_cache: torch.Tensor, *args, **kwargs) -> bool:
    """Whether the compiled decode kernel has an instance for this query's head size (and, for
    an FP8 cache, whether the tensor-core kernel runs: the only one that reads FP8; the CPU's
    does not either)."""
    if key_cache.dtype == FP8_DTYPE:
        return decode_kernel(query) == "cuda_mma"
    return query.device.type != "cuda" or query.shape[-1] in GPU_HEAD_SIZES


def paged_attention(query: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                    block_tables: torch.Tensor, seq_lens: torch.Tensor, scale: float,
                    alibi_slopes: torch.Tensor | None = None,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    # The kernels take rows at any stride (a view of the fused qkv projection's output, no
    # copy) as long as each row's heads lie back to back (the GPU op copies a query whose rows
    # start off 16-byte alignment itself).
    if query.stride(2) != 1 or query.stride(1) != query.shape[2]:
        query = query.contiguous()
    if out is None:
        out = torch.empty(query.shape, dtype=query.dtype, device=query.device)
    block_tables = block_tables.to(torch.int32).contiguous()
    seq_lens = seq_lens.to(torch.int32).contiguous()
    if alibi_slopes is not None:
        alibi_slopes = alibi_slopes.float().contiguous()
    num_seqs, num_heads, head_size = query.shape
    num_kv_heads, device_type = key_cache.shape[2], query.device.type
    # The block table's width bounds every context, without reading seq_lens on the host.
    max_context = block_tables.shape[1] * key_cache.shape[1]
    kernel = decode_kernel(query, key_cache)
    if use_v1(num_seqs, num_kv_heads, num_heads // num_kv_heads, max_context, kernel):
        _ops.paged_attention_v1(out, query, key_cache, value_cache, block_tables, seq_lens,
                                scale, alibi_slopes)
        return out
    size = partition_size(num_seqs, num_kv_heads, max_context, device_type)
    partitions = -(-max_context // size)
    stats = torch.empty((2, num_seqs, num_heads, partitions), dtype=torch.float32, device=query.device)
    tmp_out = torch.empty((num_seqs, num_heads, partitions, head_size), dtype=query.dtype,
                          device=query.device)
    _ops.paged_attention_v2(out, stats[0], stats[1], tmp_out, query, key_cache, value_cache,
                            block_tables, seq_lens, scale, alibi_slopes, size)
    return out
