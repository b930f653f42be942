"""Integer-weight ops (W4A16, W8A16; layout in inference_engine/ops/quantized_linear.py) and
SqueezeLLM's look-up ones: the compiled dequantization equals the reference's bit for bit, and
the compiled and Triton products match x @ W^T over bits, group sizes, rows, dtypes and bias, on
the CPU and the GPU; packing round-trips."""
import pytest
import torch

from inference_engine.ops import _compiled_quantized as compiled
from inference_engine.ops.quantized_linear import (dequantize_lut_ref, dequantize_wna16_ref,
                                                   pack_int32, unpack_int32, wna16_matmul_ref)
from op_testing import DEVICES, DTYPES, require_compiled

# (N, K, group size): a group per channel, groups of a word (4-bit: 8 values), and real widths.
SHAPES = [(16, 256, 32), (48, 512, 128), (32, 256, 256), (64, 1024, 64)]
# ||out - ref|| / ||ref||: the dtype's output rounding over float32 sums in another order.
RELATIVE_ERROR = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def random_wna16(n, k, group_size, bits, dtype, device):
    """(qweight, scales, zeros) of a random layer; scales are small, as a real layer's are."""
    groups = k // group_size
    q = torch.randint(0, 1 << bits, (n, k), device=device)
    zeros = torch.randint(0, 1 << bits, (n, groups), device=device).to(dtype)
    scales = (torch.rand(n, groups, device=device) * 0.02 + 0.001).to(dtype)
    return pack_int32(q, bits, 1), scales, zeros


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("dim", [0, 1])
def test_packing_round_trips(bits, dim):
    values = torch.randint(0, 1 << bits, (16, 32))
    packed = pack_int32(values, bits, dim)
    assert packed.dtype == torch.int32 and packed.shape[dim] == values.shape[dim] * bits // 32
    assert torch.equal(unpack_int32(packed, bits, dim), values.to(torch.int32))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("n, k, group_size", SHAPES)
def test_dequantized_as_the_reference(device, dtype, bits, n, k, group_size):
    require_compiled("dequantize_wna16", device)
    qweight, scales, zeros = random_wna16(n, k, group_size, bits, dtype, device)
    assert torch.equal(compiled.dequantize_wna16(qweight, scales, zeros, bits, group_size),
                       dequantize_wna16_ref(qweight, scales, zeros, bits, group_size))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("n, k, group_size", SHAPES)
@pytest.mark.parametrize("rows", [1, 3, 8, 16])
def test_product_matches_the_reference(device, dtype, bits, n, k, group_size, rows):
    require_compiled("wna16_matmul", device)
    qweight, scales, zeros = random_wna16(n, k, group_size, bits, dtype, device)
    x = torch.randn(rows, k, dtype=dtype, device=device)
    bias = torch.randn(n, dtype=dtype, device=device) if rows % 2 else None
    if not compiled.wna16_matmul_takes(x, qweight, scales, zeros, bits, group_size, bias):
        pytest.skip("no compiled kernel for this shape on this device")
    out = compiled.wna16_matmul(x, qweight, scales, zeros, bits, group_size, bias)
    weight = dequantize_wna16_ref(qweight, scales, zeros, bits, group_size).double()
    expected = x.double() @ weight.t() + (0 if bias is None else bias.double())
    assert out.dtype == dtype and out.shape == (rows, n)
    assert relative_error(out, expected) < RELATIVE_ERROR[dtype]
    ref = wna16_matmul_ref(x, qweight, scales, zeros, bits, group_size, bias)
    assert relative_error(ref, expected) < RELATIVE_ERROR[dtype]  # (the bar the reference meets)


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("n, k, group_size", [(48, 256, 32), (40, 512, 512), (16, 384, 128)])
@pytest.mark.parametrize("rows", [1, 5, 16, 33])
@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"),
                                   pytest.param(torch.float16, id="fp16")])
def test_triton_product_matches_the_reference(bits, n, k, group_size, rows, dtype):
    """The Triton fallback (ROCm, float32, other shapes): compiled on the GPU, interpreted on
    the CPU (conftest.py; its interpreter has no bfloat16)."""
    pytest.importorskip("triton")
    from inference_engine.ops.triton_wna16 import wna16_matmul
    device = "cuda" if torch.cuda.is_available() else "cpu"
    qweight, scales, zeros = random_wna16(n, k, group_size, bits, dtype, device)
    x = torch.randn(rows, k, dtype=dtype, device=device)
    bias = torch.randn(n, dtype=dtype, device=device) if rows % 2 else None
    out = wna16_matmul(x, qweight, scales, zeros, bits, group_size, bias)
    weight = dequantize_wna16_ref(qweight, scales, zeros, bits, group_size).double()
    expected = x.double() @ weight.t() + (0 if bias is None else bias.double())
    assert out.dtype == dtype and out.shape == (rows, n)
    assert relative_error(out, expected) < RELATIVE_ERROR[dtype]


def random_lut(n, k, dtype, device):
    """(qweight, lut) of a random look-up layer (SqueezeLLM): 4-bit indices, tables of 16."""
    indices = torch.randint(0, 16, (n, k), device=device)
    return pack_int32(indices, 4, 1), (torch.randn(n, 16, device=device) * 0.05).to(dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, k", [(16, 64), (48, 512)])
def test_looked_up_as_the_reference(device, dtype, n, k):
    require_compiled("dequantize_lut", device)
    qweight, lut = random_lut(n, k, dtype, device)
    assert torch.equal(compiled.dequantize_lut(qweight, lut), dequantize_lut_ref(qweight, lut))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, k", [(16, 64), (48, 512), (32, 1024)])
@pytest.mark.parametrize("rows", [1, 2, 3, 9, 16])
def test_lookup_product_matches_the_reference(device, dtype, n, k, rows):
    require_compiled("lut_matmul", device)
    qweight, lut = random_lut(n, k, dtype, device)
    x = torch.randn(rows, k, dtype=dtype, device=device)
    bias = torch.randn(n, dtype=dtype, device=device) if rows % 2 else None
    if not compiled.lut_matmul_takes(x, qweight, lut, bias):
        pytest.skip("no compiled kernel for this shape on this device")
    out = compiled.lut_matmul(x, qweight, lut, bias)
    expected = (x.double() @ dequantize_lut_ref(qweight, lut).double().t()
                + (0 if bias is None else bias.double()))
    assert out.dtype == dtype and relative_error(out, expected) < RELATIVE_ERROR[dtype]


@pytest.mark.parametrize("n, k", [(48, 256), (16, 384)])
@pytest.mark.parametrize("rows", [1, 5, 33])
@pytest.mark.parametrize("dtype", [pytest.param(torch.float32, id="fp32"),
                                   pytest.param(torch.float16, id="fp16")])
def test_triton_lookup_product_matches_the_reference(n, k, rows, dtype):
    pytest.importorskip("triton")
    from inference_engine.ops.triton_wna16 import lut_matmul
    device = "cuda" if torch.cuda.is_available() else "cpu"
    qweight, lut = random_lut(n, k, dtype, device)
    x = torch.randn(rows, k, dtype=dtype, device=device)
    bias = torch.randn(n, dtype=dtype, device=device) if rows % 2 else None
    out = lut_matmul(x, qweight, lut, bias)
    expected = (x.double() @ dequantize_lut_ref(qweight, lut).double().t()
                + (0 if bias is None else bias.double()))
    assert out.dtype == dtype and relative_error(out, expected) < RELATIVE_ERROR[dtype]
