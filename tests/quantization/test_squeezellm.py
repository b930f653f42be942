"""SqueezeLLM checkpoints (written from the format's description by utils/quantized_checkpoint.py:
a 4-bit index per weight into its output channel's 16-value table): the dequantized weights,
a whole checkpoint generating the tokens of its dequantized float twin (float32, CPU), over 2
ranks as on 1."""
import torch

from inference_engine.model_executor.layers.quantization.squeezellm import dequantize_squeezellm
from utils.hf_checkpoint import tiny_llama_config
from utils.quantized_checkpoint import (SqueezeLLMSpec, greedy_tokens, quantize_squeezellm,
                                        write_quantized_checkpoint)


def test_dequantized_as_the_format_describes():
    weight = torch.randn(48, 128, generator=torch.Generator().manual_seed(0))
    tensors, expected = quantize_squeezellm(weight, SqueezeLLMSpec())
    ours = dequantize_squeezellm(tensors["qweight"], tensors["lookup_table"].float())
    assert torch.equal(ours, expected)
    assert (ours - weight).abs().max() < weight.abs().max() / 4


def test_a_checkpoint_generates_as_its_dequantized_twin(tmp_path):
    folder, twin = write_quantized_checkpoint(tmp_path, tiny_llama_config(), SqueezeLLMSpec(),
                                              seed=2)
    assert greedy_tokens(folder) == greedy_tokens(twin)


def test_two_ranks_generate_as_one(tmp_path):
    folder, _ = write_quantized_checkpoint(tmp_path, tiny_llama_config(), SqueezeLLMSpec(),
                                           seed=3)
    assert greedy_tokens(folder, tensor_parallel_size=2) == greedy_tokens(folder)
