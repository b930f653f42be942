"""FP8 weights (--quantization fp8): the scaled matmul against its plain-PyTorch reference and
against the unquantized product, over dtypes and shapes; which layers a model quantizes; the
embedded model end to end (half the linear weights' bytes, the same likeliest first tokens up
to near ties)."""
import pytest
import torch

from inference_engine import LLM, SamplingParams
from inference_engine.model_executor.layers.linear import LinearBase
from inference_engine.model_executor.layers.quantization import building_with
from inference_engine.model_executor.layers.quantization.fp8 import (FP8, fp8_linear,
                                                                     fp8_linear_reference,
                                                                     quantize_rows)
from inference_engine.model_executor.layers.quantization.fp8_checkpoint import Fp8Config

DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")])]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("m,k,n,bias", [(1, 64, 32, False), (7, 128, 96, True),
                                        (33, 256, 512, False)])
def test_scaled_matmul_matches_its_reference(device, dtype, m, k, n, bias):
    gen = torch.Generator().manual_seed(m * k + n)
    x = torch.randn(m, k, generator=gen).to(device, dtype)
    w = torch.randn(n, k, generator=gen).to(device, dtype)
    b = torch.randn(n, generator=gen).to(device, dtype) if bias else None
    w_q, w_scale = quantize_rows(w)
    w_scale = w_scale.t().contiguous()
    ours = fp8_linear(x, w_q, w_scale, b)
    ref = fp8_linear_reference(x, w_q, w_scale, b)
    assert ours.dtype == dtype and ours.shape == (m, n)
    torch.testing.assert_close(ours.float(), ref.float(), rtol=2e-2, atol=2e-2 * k ** 0.5)
    exact = torch.nn.functional.linear(x.float(), w.float(), None if b is None else b.float())
    # e4m3 keeps 3 mantissa bits: each product is off by up to ~6 % of its size.
    assert (ours.float() - exact).norm() / exact.norm() < 0.08


def test_quantize_rows_round_trip():
    t = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0], [300.0, 1e-3, -448.0]])
    values, scale = quantize_rows(t)
    assert values.dtype == FP8 and scale.shape == (3, 1)
    assert values.float().abs().amax(dim=1).tolist()[0] == 448.0  # each row uses the full range
    torch.testing.assert_close(values.float() * scale, t, rtol=0.07, atol=1e-3)
    assert (values[1].float() == 0).all()


def test_fp8_layers_skip_shapes_the_matmul_cant_take():
    with building_with(Fp8Config()):
        model = torch.nn.Sequential(LinearBase(64, 32, bias=True),
                                    LinearBase(64, 24, bias=False))
    for layer in model:
        torch.nn.init.normal_(layer.weight)
        layer.quant_method.process_weights_after_loading(layer)
    assert model[0].weight.dtype == FP8 and model[0].weight_scale.shape == (1, 32)
    assert model[1].weight.dtype == torch.float32 and model[1].weight_scale is None
    x = torch.randn(3, 64)
    assert model[0](x).shape == (3, 32) and model[1](x).shape == (3, 24)


@pytest.fixture(scope="module")
def first_steps():
    """Each prompt's first-token log-probabilities (top 5), bf16 weights and FP8 weights."""
    prompts = ["The capital of France is", "def add(a, b):", "List three fruits:",
               "Once upon a time", "The quick brown fox", "1, 2, 3, 4,"]
    params = SamplingParams(temperature=0, max_tokens=1, logprobs=5)
    found = {}
    for quantization in (None, "fp8"):
        llm = LLM(dtype="bfloat16", max_model_len=256, cpu_kv_cache_space_gib=0.1,
                  quantization=quantization)
        model = llm.llm_engine.executor.driver.model_runner.model
        found[quantization] = (
            [o.outputs[0].logprobs[0] for o in llm.generate(prompts, params, use_tqdm=False)],
            sum(m.weight.numel() * m.weight.element_size() for m in model.modules()
                if isinstance(m, LinearBase)))
        llm.shutdown()
    return found


def test_the_embedded_model_in_fp8(first_steps):
    """A 135M model feels FP8's rounding (the log-probabilities move by ~0.2 on average), but
    keeps its likeliest first tokens at the top, up to near ties."""
    (bf16, bf16_bytes), (fp8, fp8_bytes) = first_steps[None], first_steps["fp8"]
    assert fp8_bytes * 2 == bf16_bytes
    ranks, moves = [], []
    for ours, theirs in zip(fp8, bf16):
        best = min(theirs, key=lambda t: theirs[t].rank)
        assert best in ours  # bf16's likeliest token is among FP8's top 5
        ranks.append(ours[best].rank)
        moves.append(abs(ours[best].logprob - theirs[best].logprob))
    assert max(ranks) <= 2 and ranks.count(1) >= len(ranks) * 2 / 3, ranks
    assert max(moves) < 1.0 and sum(moves) / len(moves) < 0.35, moves


def test_unknown_quantization_is_refused():
    with pytest.raises(ValueError, match="not supported"):
        LLM(quantization="int3")
