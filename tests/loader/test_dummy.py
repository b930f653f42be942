"""Dummy weights: in place, in range, seeded, on the parameter's own device and dtype."""
import pytest
import torch
from torch import nn

from inference_engine.model_executor.loader import initialize_dummy_weights, iterate_weights


def make_model(device="cpu", dtype=torch.float32) -> nn.Module:
    model = nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 32), nn.LayerNorm(32))
    return model.to(device=device, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn])
def test_fills_every_parameter_in_range(dtype):
    model = make_model(dtype=dtype)
    storages = [p.data_ptr() for p in model.parameters()]
    initialize_dummy_weights(model, seed=0, low=-0.5, high=0.5)
    for ptr, p in zip(storages, model.parameters()):
        assert p.data_ptr() == ptr and p.dtype == dtype  # filled in place
        values = p.float()
        assert values.min() >= -0.5 and values.max() <= 0.5 and values.std() > 0.1


def test_seeded():
    a, b, c = make_model(), make_model(), make_model()
    initialize_dummy_weights(a, seed=3)
    initialize_dummy_weights(b, seed=3)
    initialize_dummy_weights(c, seed=4)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb) and not torch.equal(pa, pc)
        assert pa.abs().max() <= 1e-3


def test_integer_parameters_are_left_alone():
    model = make_model()
    model.register_parameter("packed", nn.Parameter(torch.arange(8, dtype=torch.int32), requires_grad=False))
    initialize_dummy_weights(model)
    assert torch.equal(model.packed, torch.arange(8, dtype=torch.int32))


def test_dummy_weights_are_not_iterated():
    with pytest.raises(ValueError, match="initialize_dummy_weights"):
        iterate_weights("llama2-7b", "dummy", None)


@pytest.mark.gpu
def test_llama2_70b_layer_shapes_fill_fast_on_gpu():
    import time
    # One decoder layer of Llama-2-70B (about 0.86e9 parameters) in half precision.
    layer = nn.ModuleDict({name: nn.Linear(i, o, bias=False, device="cuda", dtype=torch.float16)
                           for name, (i, o) in {"qkv": (8192, 10240), "o": (8192, 8192),
                                                "gate_up": (8192, 57344), "down": (28672, 8192)}.items()})
    torch.cuda.synchronize()
    start = time.perf_counter()
    initialize_dummy_weights(layer)
    torch.cuda.synchronize()
    assert time.perf_counter() - start < 1.0
    # 1e-3 rounds up to 0.0010004 in float16, so the bound is checked at that precision.
    bound = torch.tensor(1e-3, dtype=torch.float16).item()
    assert all(p.device.type == "cuda" and p.abs().max().item() <= bound for p in layer.parameters())
