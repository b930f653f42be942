"""Gated activation kernels against their references."""
import pytest
import torch

from inference_engine.ops import _compiled
from inference_engine.ops.activation import gelu_and_mul_ref, gelu_tanh_and_mul_ref, silu_and_mul_ref
from op_testing import DEVICES, DTYPES, TOLERANCES, require_compiled

OPS = [
    ("silu_and_mul", _compiled.silu_and_mul, silu_and_mul_ref),
    ("gelu_and_mul", _compiled.gelu_and_mul, gelu_and_mul_ref),
    ("gelu_tanh_and_mul", _compiled.gelu_tanh_and_mul, gelu_tanh_and_mul_ref),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 128), (13, 2 * 11008), (2, 3, 2 * 1000), (4, 2 * 14336),
                                   (3, 2 * 4099)])
@pytest.mark.parametrize("name, op, ref", OPS, ids=[name for name, *_ in OPS])
def test_act_and_mul(device, dtype, shape, name, op, ref):
    require_compiled(name, device)
    x = torch.randn(shape, dtype=dtype, device=device) * 2
    torch.testing.assert_close(op(x), ref(x), **TOLERANCES[dtype])
