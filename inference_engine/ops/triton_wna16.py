"""The integer-weight products in Triton: where csrc/gpu/wna16_kernels.cu has no kernel (ROCm,
float32, shapes it does not take), the GPU runs this one (layout in ops/quantized_linear.py);
SqueezeLLM's look-up weights too (LUT: each 4-bit value indexes its output's table).

Each program computes a BLOCK_M x BLOCK_N tile of x W^T, stepping over K a block at a time with
BLOCK_K inputs inside one group (a power of two dividing the group size; groups of fewer than
16, which tl.dot cannot take, run the reference), so each step reads one scale
and one zero point per output. A tile of W is unpacked from the words it lies in, dequantized as
the reference does ((q - z) s, rounded once to x's dtype) and multiplied on the tensor cores
(float32 exactly, not as TF32).
"""
import torch
import triton
import triton.language as tl

from inference_engine.ops.quantized_linear import lut_matmul_ref, wna16_matmul_ref
from inference_engine.ops.triton_launch import CompiledLaunch


@triton.jit(do_not_specialize=["rows"])
def _wna16_matmul_kernel(out_ptr, x_ptr, qweight_ptr, scales_ptr, zeros_ptr, bias_ptr, rows, n,
                         k, group_size, BITS: tl.constexpr, LUT: tl.constexpr,
                         HAS_BIAS: tl.constexpr,
                         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                         FP32: tl.constexpr):
    per_word: tl.constexpr = 32 // BITS
    mask_value: tl.constexpr = (1 << BITS) - 1
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    m_ok, n_ok = offs_m < rows, offs_n < n
    words = k // per_word
    groups = k // group_size
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, k, BLOCK_K):
        inputs = k0 + offs_k
        x = tl.load(x_ptr + offs_m[:, None] * k + inputs[None, :], mask=m_ok[:, None], other=0.0)
        packed = tl.load(qweight_ptr + offs_n[:, None] * words + (inputs // per_word)[None, :],
                         mask=n_ok[:, None], other=0)
        q = (packed >> ((inputs % per_word) * BITS)[None, :]) & mask_value  # [BLOCK_N, BLOCK_K]
        if LUT:  # scales_ptr: the tables [N, 16]
            w = tl.load(scales_ptr + offs_n[:, None] * 16 + q, mask=n_ok[:, None], other=0.0)
            w = w.to(x.dtype)
        else:
            group = k0 // group_size
            scale = tl.load(scales_ptr + offs_n * groups + group, mask=n_ok, other=0.0)
            zero = tl.load(zeros_ptr + offs_n * groups + group, mask=n_ok, other=0.0)
            w = ((q.to(tl.float32) - zero.to(tl.float32)[:, None])
                 * scale.to(tl.float32)[:, None]).to(x.dtype)
        if FP32:
            acc += tl.dot(x, tl.trans(w), input_precision="ieee")
        else:
            acc += tl.dot(x, tl.trans(w))
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + offs_m[:, None] * n + offs_n[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


_launch = CompiledLaunch(_wna16_matmul_kernel)


def _matmul(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
            bits: int, group_size: int, bias: torch.Tensor | None, lut: bool) -> torch.Tensor:
    block_k = 128  # the largest power of two up to 128 that divides the group size
    while group_size % block_k:
        block_k //= 2
    x = x.contiguous()
    rows, k = x.shape
    n = qweight.shape[0]
    out = torch.empty(rows, n, dtype=x.dtype, device=x.device)
    block_m = 16 if rows <= 16 else 64
    block_n = 32 if rows <= 16 else 64  # few rows: more programs over N to fill the GPU
    grid = (triton.cdiv(rows, block_m), triton.cdiv(n, block_n))
    _launch(grid, out, x, qweight, scales, zeros, bias if bias is not None else out, rows, n, k,
            group_size, BITS=bits, LUT=lut, HAS_BIAS=bias is not None, BLOCK_M=block_m,
            BLOCK_N=block_n, BLOCK_K=block_k, FP32=x.dtype == torch.float32)
    return out


def _block_k_ok(group_size: int) -> bool:
    """Whether a power of two of at least 16 (what tl.dot takes) divides the group size."""
    return group_size % 16 == 0


def wna16_matmul(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                 zeros: torch.Tensor, bits: int, group_size: int,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
    if not _block_k_ok(group_size):
        return wna16_matmul_ref(x, qweight, scales, zeros, bits, group_size, bias)
    return _matmul(x, qweight, scales, zeros, bits, group_size, bias, lut=False)


def lut_matmul(x: torch.Tensor, qweight: torch.Tensor, lut: torch.Tensor,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    k = qweight.shape[1] * 8
    if not _block_k_ok(k):
        return lut_matmul_ref(x, qweight, lut, bias)
    return _matmul(x, qweight, lut, lut, 4, k, bias, lut=True)
