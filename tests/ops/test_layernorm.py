"""rms_norm and fused_add_rms_norm kernels against the Hugging Face-ordered references."""
import pytest
import torch

from inference_engine.ops import _compiled
from inference_engine.ops.layernorm import fused_add_rms_norm_ref, rms_norm_ref
from op_testing import DEVICES, DTYPES, TOLERANCES, require_compiled

SHAPES = [(1, 64), (7, 4096), (3, 5, 1000), (33, 8192)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_rms_norm(device, dtype, shape):
    require_compiled("rms_norm", device)
    x = torch.randn(shape, dtype=dtype, device=device) * 3
    weight = torch.randn(shape[-1], dtype=dtype, device=device)
    torch.testing.assert_close(_compiled.rms_norm(x, weight, 1e-6), rms_norm_ref(x, weight, 1e-6),
                               **TOLERANCES[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fused_add_rms_norm(device, dtype, shape):
    require_compiled("fused_add_rms_norm", device)
    x = torch.randn(shape, dtype=dtype, device=device)
    residual = torch.randn(shape, dtype=dtype, device=device)
    weight = torch.randn(shape[-1], dtype=dtype, device=device)
    residual_before = residual.clone()
    out, res = _compiled.fused_add_rms_norm(x, residual, weight, 1e-5)
    ref_out, ref_res = fused_add_rms_norm_ref(x, residual, weight, 1e-5)
    torch.testing.assert_close(res, ref_res, **TOLERANCES[dtype])
    torch.testing.assert_close(out, ref_out, **TOLERANCES[dtype])
    assert torch.equal(residual, residual_before), "the residual input must not be modified"
