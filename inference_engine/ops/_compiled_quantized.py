"""The compiled integer-weight ops (csrc/cpu/wna16.cpp, csrc/gpu/wna16_kernels.cu) and look-up
ones (csrc/cpu/lut_gemm.cpp, csrc/gpu/lut_kernels.cu) with the references' signatures
(ops/quantized_linear.py)."""
import torch

from inference_engine.ops._compiled import _has_tensor_core_mma

_ops = torch.ops.inference_engine

# The GPU's packed product (csrc/gpu/wna16_kernels.cu): up to this many rows, 16-bit, a group of
# 32 inputs or more (a lane's 32 4-bit values, or 16 8-bit ones, share one scale), K a multiple
# of 128 (a warp's window of 4-bit values) and N of 16, CUDA sm_80+.
GPU_MAX_ROWS = 16


def _gpu_packed_takes(x: torch.Tensor, qweight: torch.Tensor) -> bool:
    """What csrc/gpu/packed_matmul.cuh needs of every call, whatever its weights' policy."""
    return (x.dtype in (torch.float16, torch.bfloat16) and 1 <= x.shape[0] <= GPU_MAX_ROWS
            and x.shape[1] % 128 == 0 and qweight.shape[0] % 16 == 0
            and torch.version.hip is None and _has_tensor_core_mma(x.device.index))


def wna16_matmul_takes(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                       zeros: torch.Tensor, bits: int, group_size: int,
                       bias: torch.Tensor | None = None) -> bool:
    """Whether the compiled packed product has a kernel for this call."""
    if x.dim() != 2 or x.dtype != scales.dtype or bits not in (4, 8):
        return False
    k = x.shape[1]
    if not x.is_cuda:  # the CPU kernel takes eight words at a time
        return k % (8 * 32 // bits) == 0
    return group_size % 32 == 0 and _gpu_packed_takes(x, qweight)


def wna16_matmul(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                 zeros: torch.Tensor, bits: int, group_size: int,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
    out = torch.empty(x.shape[0], qweight.shape[0], dtype=x.dtype, device=x.device)
    _ops.wna16_matmul(out, x.contiguous(), qweight, scales, zeros, bits, group_size,
                      None if bias is None else bias.contiguous())
    return out


def dequantize_wna16(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, bits: int,
                     group_size: int) -> torch.Tensor:
    out = torch.empty(qweight.shape[0], scales.shape[1] * group_size, dtype=scales.dtype,
                      device=scales.device)
    _ops.dequantize_wna16(out, qweight, scales, zeros, bits, group_size)
    return out


def lut_matmul_takes(x: torch.Tensor, qweight: torch.Tensor, lut: torch.Tensor,
                     bias: torch.Tensor | None = None) -> bool:
    """Whether the compiled look-up product has a kernel for this call: the CPU's eight words at a
    time; the GPU's (csrc/gpu/lut_kernels.cu) as wna16_matmul's, K a multiple of 128."""
    if x.dim() != 2 or x.dtype != lut.dtype:
        return False
    if not x.is_cuda:
        return qweight.shape[1] % 8 == 0
    return _gpu_packed_takes(x, qweight)


def lut_matmul(x: torch.Tensor, qweight: torch.Tensor, lut: torch.Tensor,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    out = torch.empty(x.shape[0], qweight.shape[0], dtype=x.dtype, device=x.device)
    _ops.lut_matmul(out, x.contiguous(), qweight, lut, None if bias is None else bias.contiguous())
    return out


def dequantize_lut(qweight: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    out = torch.empty(qweight.shape[0], qweight.shape[1] * 8, dtype=lut.dtype, device=lut.device)
    _ops.dequantize_lut(out, qweight, lut)
    return out
