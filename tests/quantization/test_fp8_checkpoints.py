"""Checkpoints stored in FP8: AutoFP8's / vLLM's `fp8` method (per-tensor weight scales, static or
dynamic activation scales; written here from its description) and compressed-tensors'
`float-quantized` W8A8-FP8 (made by the library's own compressor). Loaded weights equal the
checkpoint's dequantized ones (fused q/k/v and gate/up with a scale each), a layer multiplies
as the plain-PyTorch W8A8 reference does, a whole model serves, two ranks generate as one."""
import pytest
import torch

from inference_engine import LLM, SamplingParams
from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.model_executor.layers.quantization.fp8 import FP8, FP8_MAX
from utils.w8a8_checkpoint import (autofp8_tensors, ct_tensors, ct_w8a8_config,
                                   write_w8a8_checkpoint)

PROMPTS = [[5, 17, 300, 4000, 12], list(range(100, 140)), [7] * 9]
GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True, logprobs=1)
INPUT_SCALE = 0.02  # the static activation scale written for every layer

CASES = {
    "autofp8-static": ({"quant_method": "fp8", "activation_scheme": "static"},
                       lambda w: autofp8_tensors(w, INPUT_SCALE)),
    "autofp8-dynamic": ({"quant_method": "fp8", "activation_scheme": "dynamic"},
                        lambda w: autofp8_tensors(w, None)),
    "ct-channel-token": (ct_w8a8_config("float", "channel", "token", True),
                         lambda w: ct_tensors(w, "float", "channel")),
    "ct-tensor-tensor": (ct_w8a8_config("float", "tensor", "tensor", True),
                         lambda w: ct_tensors(w, "float", "tensor")),
}


def engine(path: str, **kwargs) -> LLM:
    return LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=128,
               cpu_kv_cache_space_gib=0.05, **kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_loaded_as_stored_and_multiplied_as_the_reference(tmp_path, case):
    quantization_config, quantize = CASES[case]
    path, dequantized = write_w8a8_checkpoint(tmp_path, quantization_config, quantize, seed=1)
    method = EngineArgs(model=path, dtype="float32").create_engine_config().model_config
    assert method.quantization == quantization_config["quant_method"]
    llm = engine(path)
    model = llm.llm_engine.executor.driver.model_runner.model
    attn = model.model.layers[0].self_attn.qkv_proj
    loaded = attn.weight.float() * attn.weight_scale[:, None]
    prefix = "model.layers.0.self_attn."
    expected = torch.cat([dequantized[prefix + p + ".weight"] for p in ("q_proj", "k_proj",
                                                                         "v_proj")])
    assert attn.weight.dtype == FP8 and torch.equal(loaded, expected)
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(2))
    if "static" in case:
        scale = torch.tensor(INPUT_SCALE)
        reference_x = (x / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8).float() * scale
    elif "token" in case:
        scale = x.abs().amax(1, keepdim=True) / FP8_MAX
        reference_x = (x / scale).to(FP8).float() * scale
    else:
        scale = x.abs().max() / FP8_MAX
        reference_x = (x / scale).to(FP8).float() * scale
    torch.testing.assert_close(attn(x), reference_x @ expected.t(), rtol=1e-5, atol=1e-5)
    outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)
    assert all(len(o.outputs[0].token_ids) == 8 for o in outputs)
    llm.shutdown()


def test_two_ranks_generate_as_one_with_static_scales(tmp_path):
    quantization_config, quantize = CASES["autofp8-static"]
    path, _ = write_w8a8_checkpoint(tmp_path, quantization_config, quantize, seed=3)
    runs = []
    for tp in (1, 2):
        llm = engine(path, tensor_parallel_size=tp)
        runs.append([o.outputs[0].token_ids for o in llm.generate(
            prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)])
        llm.shutdown()
    assert runs[0] == runs[1]


def test_block_wise_fp8_is_refused(tmp_path):
    config = {"quant_method": "fp8", "activation_scheme": "dynamic",
              "weight_block_size": [128, 128]}
    path, _ = write_w8a8_checkpoint(tmp_path, config, lambda w: autofp8_tensors(w, None))
    with pytest.raises(ValueError, match="block-wise scales"):
        EngineArgs(model=path, dtype="float32").create_engine_config()
