"""SqueezeLLM checkpoints (written from the format's description by utils/quantized_checkpoint.py:
a 4-bit index per weight into its output channel's 16-value table): the dequantized weights,
a whole checkpoint generating the tokens of its dequantized float twin (float32, CPU), over 2
ranks as on 1."""
import torch

from inference_engine import LLM, SamplingParams
from inference_engine.model_executor.layers.quantization.squeezellm import dequantize_squeezellm
from utils.hf_checkpoint import tiny_llama_config
from utils.quantized_checkpoint import (SqueezeLLMSpec, quantize_squeezellm,
                                        write_quantized_checkpoint)

PROMPTS = [[5, 17, 300, 4000, 12], list(range(100, 140)), [7] * 9]
GREEDY = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)


def test_dequantized_as_the_format_describes():
    weight = torch.randn(48, 128, generator=torch.Generator().manual_seed(0))
    tensors, expected = quantize_squeezellm(weight, SqueezeLLMSpec())
    ours = dequantize_squeezellm(tensors["qweight"], tensors["lookup_table"].float())
    assert torch.equal(ours, expected)
    assert (ours - weight).abs().max() < weight.abs().max() / 4


def generate(path: str, **kwargs) -> list:
    llm = LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=128,
              cpu_kv_cache_space_gib=0.05, **kwargs)
    try:
        return [o.outputs[0].token_ids for o in llm.generate(
            prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)]
    finally:
        llm.shutdown()


def test_a_checkpoint_generates_as_its_dequantized_twin(tmp_path):
    folder, twin = write_quantized_checkpoint(tmp_path, tiny_llama_config(), SqueezeLLMSpec(),
                                              seed=2)
    assert generate(folder) == generate(twin)


def test_two_ranks_generate_as_one(tmp_path):
    folder, _ = write_quantized_checkpoint(tmp_path, tiny_llama_config(), SqueezeLLMSpec(),
                                           seed=3)
    assert generate(folder, tensor_parallel_size=2) == generate(folder)
