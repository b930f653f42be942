"""compressed-tensors' `int-quantized` W8A8-INT8, made by the library's own compressor: loaded
weights equal its decompression (fused q/k/v with a scale each), a layer multiplies as the
plain-PyTorch W8A8 reference does (activations per token, or with a static scale), a whole model
serves, two ranks generate as one."""
import copy

import pytest
import torch
from compressed_tensors.compressors.naive_quantized.base import IntQuantizationCompressor
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.utils import calculate_qparams

from inference_engine import LLM, SamplingParams
from inference_engine.engine.arg_utils import EngineArgs
from utils.hf_checkpoint import random_state_dict, tiny_llama_config, write_hf_checkpoint
from utils.quantized_checkpoint import PROJECTIONS

PROMPTS = [[5, 17, 300, 4000, 12], list(range(100, 140)), [7] * 9]
GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
INPUT_SCALE = 0.01


def compress(weight: torch.Tensor, strategy: str, static: bool) -> tuple[dict, torch.Tensor]:
    args = QuantizationArgs(num_bits=8, type="int", strategy=strategy, symmetric=True)
    low, high = ((weight.amin().reshape(1), weight.amax().reshape(1)) if strategy == "tensor"
                 else (weight.amin(1, keepdim=True), weight.amax(1, keepdim=True)))
    scale, zero_point = calculate_qparams(low, high, args)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    tensors = IntQuantizationCompressor.compress(
        {"weight": weight, "weight_scale": scale, "weight_zero_point": zero_point}, scheme)
    decompressed = IntQuantizationCompressor.decompress(dict(tensors), scheme)["weight"]
    tensors = {k: v for k, v in tensors.items() if k != "weight_zero_point"}
    if static:
        tensors["input_scale"] = torch.tensor([INPUT_SCALE])
    return tensors, decompressed


def quantization_config(strategy: str, static: bool) -> dict:
    inputs = QuantizationArgs(num_bits=8, type="int", symmetric=True, dynamic=not static,
                              strategy="tensor" if static else "token")
    weights = QuantizationArgs(num_bits=8, type="int", strategy=strategy, symmetric=True)
    return {"quant_method": "compressed-tensors", "format": "int-quantized",
            "ignore": ["lm_head"], "config_groups": {"group_0": {
                "targets": ["Linear"], "weights": weights.model_dump(mode="json"),
                "input_activations": inputs.model_dump(mode="json")}}}


def write_checkpoint(path, strategy: str, static: bool, seed: int = 0) -> tuple[str, dict]:
    config = tiny_llama_config()
    stored, dequantized = {}, {}
    for name, tensor in random_state_dict(config, seed).items():
        module = name.removesuffix(".weight")
        if name.endswith(".weight") and module.rpartition(".")[2] in PROJECTIONS:
            tensors, dequantized[name] = compress(tensor, strategy, static)
            stored.update({f"{module}.{part}": t for part, t in tensors.items()})
        else:
            stored[name] = tensor
    config = copy.deepcopy(config)
    config.quantization_config = quantization_config(strategy, static)
    return write_hf_checkpoint(path, config, state_dict=stored, tokenizer=False), dequantized


def engine(path: str, **kwargs) -> LLM:
    return LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=128,
               cpu_kv_cache_space_gib=0.05, **kwargs)


@pytest.mark.parametrize("strategy,static", [("channel", False), ("tensor", True)])
def test_loaded_as_the_library_decompresses_and_multiplied_as_the_reference(tmp_path, strategy,
                                                                            static):
    path, dequantized = write_checkpoint(tmp_path, strategy, static, seed=1)
    config = EngineArgs(model=path, dtype="float32").create_engine_config().model_config
    assert config.quantization == "compressed-tensors"
    llm = engine(path)
    qkv = llm.llm_engine.executor.driver.model_runner.model.model.layers[0].self_attn.qkv_proj
    prefix = "model.layers.0.self_attn."
    expected = torch.cat([dequantized[prefix + p + ".weight"]
                          for p in ("q_proj", "k_proj", "v_proj")])
    assert qkv.weight.dtype == torch.int8
    torch.testing.assert_close(qkv.weight.float() * qkv.weight_scale[:, None], expected,
                               rtol=1e-6, atol=1e-7)
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(2))
    scale = (torch.tensor(INPUT_SCALE) if static
             else x.abs().amax(1, keepdim=True) / 127)
    reference_x = (x / scale).round().clamp(-128, 127) * scale
    torch.testing.assert_close(qkv(x), reference_x @ expected.t(), rtol=1e-5, atol=1e-5)
    outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)
    assert all(len(o.outputs[0].token_ids) == 8 for o in outputs)
    llm.shutdown()


def test_two_ranks_generate_as_one_with_static_scales(tmp_path):
    path, _ = write_checkpoint(tmp_path, "channel", True, seed=3)
    runs = []
    for tp in (1, 2):
        llm = engine(path, tensor_parallel_size=tp)
        runs.append([o.outputs[0].token_ids for o in llm.generate(
            prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)])
        llm.shutdown()
    assert runs[0] == runs[1]
