"""References for the integer-weight ops (W4A16, W8A16, and SqueezeLLM's look-up weights at the
end): the one layout every integer format (GPTQ, AWQ, compressed-tensors pack-quantized) is put
in once loaded, its dequantization and the product on it.

A layer of K inputs and N outputs holds, with p = 32 / bits values per int32:

    qweight  int32 [N, K / p]  q[n, k]: bits (k % p) * bits.. of qweight[n, k // p], lowest first
    scales         [N, G]      the 16-bit (or float32) dtype of the activations
    zeros          [N, G]      the zero point of each group, an integer held in the scales' dtype

    W[n, k] = scales[n, g] * (q[n, k] - zeros[n, g]),  g = k // group_size (G = K / group_size)

Each row of W is a contiguous run of packed values, so a kernel streams W's rows as it would a
16-bit weight's (csrc/cpu/wna16.cpp, csrc/gpu/wna16_kernels.cu). The subtraction is exact (small
integers), the product rounds once in the scales' dtype: every backend dequantizes to the same
weight, as the formats' own dequantizers do.
"""
import torch
import torch.nn.functional as F


def unpack_int32(packed: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """The unsigned `bits`-bit values packed in int32 `packed` along `dim`, lowest bits first:
    that dimension grows 32 / bits times."""
    shifts = torch.arange(0, 32, bits, dtype=torch.int32, device=packed.device)
    shape = [1] * (packed.dim() + 1)
    shape[dim + 1] = -1
    values = (packed.unsqueeze(dim + 1) >> shifts.view(shape)) & ((1 << bits) - 1)
    return values.flatten(dim, dim + 1)


def pack_int32(values: torch.Tensor, bits: int, dim: int) -> torch.Tensor:
    """unpack_int32's inverse: unsigned `bits`-bit `values` packed 32 / bits to an int32 along
    `dim` (whose size they divide)."""
    per_int = 32 // bits
    moved = values.movedim(dim, -1).to(torch.int64)
    moved = moved.unflatten(-1, (-1, per_int))
    shifts = torch.arange(0, 32, bits, dtype=torch.int64, device=values.device)
    packed = (moved << shifts).sum(-1)  # disjoint bits: the sum is their OR
    packed = torch.where(packed >= 1 << 31, packed - (1 << 32), packed)  # as signed int32
    return packed.to(torch.int32).movedim(-1, dim).contiguous()


def dequantize_wna16_ref(qweight: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor,
                         bits: int, group_size: int) -> torch.Tensor:
    """W [N, K] in the scales' dtype, contiguous."""
    q = unpack_int32(qweight, bits, 1).to(scales.dtype)  # small integers: exact
    return ((q.unflatten(1, (-1, group_size)) - zeros.unsqueeze(2))
            * scales.unsqueeze(2)).flatten(1)


def wna16_matmul_ref(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor,
                     zeros: torch.Tensor, bits: int, group_size: int,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [M, K] W^T (+ b), W dequantized as dequantize_wna16_ref does."""
    weight = dequantize_wna16_ref(qweight, scales, zeros, bits, group_size)
    return F.linear(x, weight.to(x.dtype), bias)


# Look-up weights (SqueezeLLM): 4-bit indices in qweight's layout above, each into its output's
# table of 16 values, lut [N, 16] in the activations' dtype: W[n, k] = lut[n, q[n, k]].

def dequantize_lut_ref(qweight: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """W [N, K] in the table's dtype, contiguous."""
    return torch.gather(lut, 1, unpack_int32(qweight, 4, 1).long())


def lut_matmul_ref(x: torch.Tensor, qweight: torch.Tensor, lut: torch.Tensor,
                   bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [M, K] W^T (+ b), W looked up as dequantize_lut_ref does."""
    return F.linear(x, dequantize_lut_ref(qweight, lut).to(x.dtype), bias)
