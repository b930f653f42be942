"""Quantized checkpoints on a GPU, through the CUDA graphs: GPTQ, AWQ and SqueezeLLM generate the
tokens of their dequantized float twins (float32) and keep the twin's likeliest first tokens in
float16; W8A8 layers (FP8 through torch._scaled_mm, INT8 through torch._int_mm, few rows and
many) multiply as the plain-PyTorch reference does, and their models generate."""
import pytest
import torch

from inference_engine import SamplingParams
from inference_engine.model_executor.layers.quantization.fp8 import FP8, FP8_MAX
from utils.gpu_engine import float32_engine
from utils.hf_checkpoint import tiny_llama_config
from utils.quantized_checkpoint import (AWQSpec, GPTQSpec, SqueezeLLMSpec,
                                        write_quantized_checkpoint)
from utils.w8a8_checkpoint import (autofp8_tensors, ct_tensors, ct_w8a8_config,
                                   write_w8a8_checkpoint)

pytestmark = pytest.mark.gpu

# Heads of 64, a size the GPU attention kernels take; prompts of 3 to 70 tokens in one step.
CONFIG = dict(hidden_size=256, intermediate_size=512, num_attention_heads=4,
              num_key_value_heads=2, head_dim=64, max_position_embeddings=1024)
PROMPTS = [[5, 17, 300], list(range(100, 170)), [7] * 12 + [900, 901], list(range(2000, 2031))]
GREEDY = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
INPUT_SCALE = 0.02


def tokens(llm) -> list[list[int]]:
    return [list(o.outputs[0].token_ids) for o in llm.generate(
        prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)]


def first_logprobs(llm) -> list[dict]:
    params = SamplingParams(temperature=0, max_tokens=1, logprobs=5)
    return [o.outputs[0].logprobs[0] for o in llm.generate(
        prompt_token_ids=PROMPTS, sampling_params=params, use_tqdm=False)]


@pytest.mark.parametrize("spec", [GPTQSpec(), GPTQSpec(bits=8, group_size=64, desc_act=True),
                                  AWQSpec(32), SqueezeLLMSpec()], ids=str)
def test_weight_only_checkpoints_generate_as_their_twins(tmp_path, spec):
    quantized, twin = write_quantized_checkpoint(tmp_path, tiny_llama_config(**CONFIG), spec,
                                                 seed=4)
    runs, firsts = [], []
    for path in (quantized, twin):
        with float32_engine(path, max_model_len=256) as llm:
            assert llm.llm_engine.executor.driver.model_runner.graph_runner is not None
            runs.append(tokens(llm))
        with float32_engine(path, max_model_len=256, dtype="float16") as llm:
            firsts.append(first_logprobs(llm))
    assert runs[0] == runs[1]
    for ours, theirs in zip(*firsts):
        best = min(theirs, key=lambda t: theirs[t].rank)
        assert best in ours and ours[best].logprob == pytest.approx(theirs[best].logprob,
                                                                   abs=0.05)


W8A8_CASES = {
    "fp8-static": ({"quant_method": "fp8", "activation_scheme": "static"},
                   lambda w: autofp8_tensors(w, INPUT_SCALE)),
    "fp8-ct-channel-token": (ct_w8a8_config("float", "channel", "token", True),
                             lambda w: ct_tensors(w, "float", "channel")),
    "int8-channel-token": (ct_w8a8_config("int", "channel", "token", True),
                           lambda w: ct_tensors(w, "int", "channel")),
    "int8-tensor-static": (ct_w8a8_config("int", "tensor", "tensor", False),
                           lambda w: ct_tensors(w, "int", "tensor", INPUT_SCALE)),
}


def reference_input(case: str, x: torch.Tensor) -> torch.Tensor:
    """x as the layer sees it: quantized to FP8 or INT8 per token or with the static scale."""
    top = FP8_MAX if case.startswith("fp8") else 127.0
    scale = (torch.tensor(INPUT_SCALE, device=x.device) if "static" in case
             else x.abs().amax(1, keepdim=True) / top)
    scaled = (x / scale).clamp(-top, top)
    scaled = scaled.to(FP8).float() if case.startswith("fp8") else scaled.round()
    return scaled * scale


@pytest.mark.parametrize("case", sorted(W8A8_CASES))
def test_w8a8_layers_multiply_as_the_reference_and_generate(tmp_path, case):
    quantization_config, quantize = W8A8_CASES[case]
    path, dequantized = write_w8a8_checkpoint(tmp_path, quantization_config, quantize, seed=5,
                                              config=tiny_llama_config(**CONFIG))
    with float32_engine(path, max_model_len=256, dtype="bfloat16") as llm:
        qkv = llm.llm_engine.executor.driver.model_runner.model.model.layers[0].self_attn.qkv_proj
        prefix = "model.layers.0.self_attn."
        weight = torch.cat([dequantized[prefix + p + ".weight"]
                            for p in ("q_proj", "k_proj", "v_proj")]).cuda()
        for rows in (1, 5, 16, 17, 64):  # INT8 pads fewer than 17 rows for torch._int_mm
            x = torch.randn(rows, 256, device="cuda", generator=torch.Generator(
                "cuda").manual_seed(rows)).bfloat16().float()  # (what the layer is given)
            expected = reference_input(case, x) @ weight.t()
            torch.testing.assert_close(qkv(x.bfloat16()).float(), expected, rtol=2e-2,
                                       atol=2e-2 * expected.abs().max().item())
        generated = tokens(llm)
    assert all(len(t) == 12 for t in generated)
