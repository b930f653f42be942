"""GPTQ checkpoints (utils/quantized_checkpoint.py writes them from the format's description): the
unpacking and dequantization against the description over bits, group sizes, act-order,
symmetry and both zero-point conventions; whole checkpoints generating the tokens of their
dequantized float twins (float32, CPU), sharded over 2 ranks as on 1; what is refused."""
import json

import numpy as np
import pytest
import torch

from inference_engine import LLM, SamplingParams, ops
from inference_engine.config import QUANTIZATION_METHODS
from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.model_executor.layers.quantization import (QUANTIZATION_ALIASES,
                                                                 QUANTIZATION_CONFIGS)
from inference_engine.model_executor.layers.quantization.gptq import (dequantize_gptq,
                                                                      unpack_int32)
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint
from utils.quantized_checkpoint import GPTQSpec, _pack, quantize_gptq, write_quantized_checkpoint

PROMPTS = [[5, 17, 300, 4000, 12], list(range(100, 140)), [7] * 9]
GREEDY = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
SPECS = [GPTQSpec(), GPTQSpec(bits=8, group_size=-1, sym=False, checkpoint_format="gptq_v2"),
         GPTQSpec(group_size=64, desc_act=True, sym=False),
         GPTQSpec(bits=8, group_size=32, desc_act=True)]


def method_of(path: str, **kwargs) -> str | None:
    """The quantization method the engine runs the checkpoint at `path` with."""
    args = EngineArgs(model=path, dtype="float32", **kwargs)
    return args.create_engine_config().model_config.quantization


def test_the_engine_lists_every_registered_method():
    assert set(QUANTIZATION_METHODS) == set(QUANTIZATION_CONFIGS) | set(QUANTIZATION_ALIASES)


def test_vllm_marlin_names_run_the_checkpoints_they_name(tmp_path):
    gptq, _ = write_quantized_checkpoint(tmp_path, tiny_llama_config(), GPTQSpec())
    assert method_of(gptq, quantization="gptq_marlin") == "gptq"
    with pytest.raises(ValueError, match="--quantization awq does not apply"):
        method_of(gptq, quantization="awq_marlin")


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("axis", [0, 1])
def test_unpacking_reads_the_packed_order(bits, axis):
    values = np.random.default_rng(bits).integers(0, 1 << bits, size=(16, 24))
    packed = torch.from_numpy(_pack(values, bits, axis))
    assert torch.equal(unpack_int32(packed, bits, axis), torch.from_numpy(values).to(torch.int32))


@pytest.mark.parametrize("spec", SPECS + [GPTQSpec(group_size=128, sym=False),
                                          GPTQSpec(bits=4, group_size=32, sym=False,
                                                   checkpoint_format="gptq_v2")])
def test_dequantized_as_the_format_describes(spec):
    weight = torch.randn(48, 256, generator=torch.Generator().manual_seed(1))
    tensors, expected = quantize_gptq(weight, spec, seed=2)
    ours = dequantize_gptq(tensors["qweight"], tensors["qzeros"], tensors["scales"].float(),
                           tensors["g_idx"], spec.bits, spec.checkpoint_format == "gptq")
    assert torch.equal(ours, expected)
    step = weight.abs().max() * 2 / ((1 << spec.bits) - 1)  # (the quantization's own error)
    assert (ours - weight).abs().max() <= step


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_a_gptq_checkpoint_generates_as_its_dequantized_twin(tmp_path, spec):
    gptq, twin = write_quantized_checkpoint(tmp_path, tiny_llama_config(), spec, seed=3)
    runs = []
    for path in (gptq, twin):
        llm = LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=128,
                  cpu_kv_cache_space_gib=0.05)
        runs.append([o.outputs[0].token_ids for o in llm.generate(
            prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)])
        llm.shutdown()
    assert runs[0] == runs[1]
    assert method_of(gptq) == "gptq"  # as its quantization_config says


def test_packed_weights_stay_packed(tmp_path):
    gptq, _ = write_quantized_checkpoint(tmp_path, tiny_llama_config(), GPTQSpec())
    llm = LLM(gptq, dtype="float32", skip_tokenizer_init=True, max_model_len=64,
              cpu_kv_cache_space_gib=0.01)
    layer = llm.llm_engine.executor.driver.model_runner.model.model.layers[0].mlp.down_proj
    # Repacked along the input, a row of W per output (ops/quantized_linear.py).
    assert layer.qweight.dtype == torch.int32 and layer.qweight.shape == (64, 128 // 8)
    assert layer.scales.shape == layer.zeros.shape == (64, 128 // 32)
    assert not hasattr(layer, "weight") and not hasattr(layer, "qzeros")
    assert ops.wna16_matmul.backend("cpu") == "compiled"  # decode steps' rows: csrc/cpu/wna16.cpp
    llm.shutdown()


@pytest.mark.parametrize("spec", [GPTQSpec(group_size=32, desc_act=True, sym=False)], ids=str)
def test_two_ranks_generate_as_one(tmp_path, spec):
    """Act-order: the row-parallel layers' inputs come from any group (the harder split)."""
    gptq, _ = write_quantized_checkpoint(tmp_path, tiny_llama_config(), spec, seed=5)
    runs = []
    for tp in (1, 2):
        llm = LLM(gptq, dtype="float32", skip_tokenizer_init=True, max_model_len=128,
                  cpu_kv_cache_space_gib=0.05, tensor_parallel_size=tp)
        runs.append([o.outputs[0].token_ids for o in llm.generate(
            prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)])
        llm.shutdown()
    assert runs[0] == runs[1]


def test_what_cannot_run_is_refused_at_start(tmp_path):
    plain = write_hf_checkpoint(tmp_path / "plain", tiny_llama_config(), tokenizer=False)
    with pytest.raises(ValueError, match="needs a GPTQ checkpoint"):
        method_of(plain, quantization="gptq")
    gptq, _ = write_quantized_checkpoint(tmp_path / "q", tiny_llama_config(), GPTQSpec())
    with pytest.raises(ValueError, match="--quantization fp8 does not apply to a checkpoint "
                                         "quantized with gptq"):
        method_of(gptq, quantization="fp8")
    for change, message in (({"bits": 3}, "GPTQ with 3 bits is not supported"),
                            ({"quant_method": "bitsandbytes"}, "quantized with 'bitsandbytes', "
                                                               "which is not supported yet")):
        path = tmp_path / "q" / "quantized" / "config.json"
        config = json.loads(path.read_text())
        config["quantization_config"].update(change)
        path.write_text(json.dumps(config))
        with pytest.raises(ValueError, match=message):
            method_of(str(path.parent))
