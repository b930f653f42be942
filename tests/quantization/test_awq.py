"""AWQ checkpoints (AutoAWQ's GEMM layout, written from its description by
utils/quantized_checkpoint.py): the unpacking in AutoAWQ's nibble order, the dequantized weights,
whole checkpoints generating the tokens of their dequantized float twins (float32, CPU), over
2 ranks as on 1; what is refused."""
import json

import numpy as np
import pytest
import torch

from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.model_executor.layers.quantization.awq import dequantize_awq, unpack_awq
from utils.hf_checkpoint import tiny_llama_config
from utils.quantized_checkpoint import (AWQSpec, _pack_awq, greedy_tokens, quantize_awq,
                                        write_quantized_checkpoint)


def test_unpacking_reads_autoawqs_nibble_order():
    values = np.random.default_rng(0).integers(0, 16, size=(5, 32))
    assert torch.equal(unpack_awq(torch.from_numpy(_pack_awq(values))),
                       torch.from_numpy(values).to(torch.int32))


@pytest.mark.parametrize("group_size", [32, 64, 256])
def test_dequantized_as_the_format_describes(group_size):
    weight = torch.randn(48, 256, generator=torch.Generator().manual_seed(group_size))
    tensors, expected = quantize_awq(weight, AWQSpec(group_size))
    ours = dequantize_awq(tensors["qweight"], tensors["qzeros"], tensors["scales"].float(),
                          group_size)
    assert torch.equal(ours, expected)
    assert (ours - weight).abs().max() <= (weight.max() - weight.min()) / 15


@pytest.mark.parametrize("group_size", [32, 64])
def test_an_awq_checkpoint_generates_as_its_dequantized_twin(tmp_path, group_size):
    awq, twin = write_quantized_checkpoint(tmp_path, tiny_llama_config(), AWQSpec(group_size),
                                           seed=3)
    config = EngineArgs(model=awq, dtype="float32").create_engine_config().model_config
    assert config.quantization == "awq"
    assert greedy_tokens(awq) == greedy_tokens(twin)


def test_two_ranks_generate_as_one(tmp_path):
    awq, _ = write_quantized_checkpoint(tmp_path, tiny_llama_config(), AWQSpec(32), seed=4)
    assert greedy_tokens(awq, tensor_parallel_size=2) == greedy_tokens(awq)


def test_unsupported_awq_variants_are_refused(tmp_path):
    awq, _ = write_quantized_checkpoint(tmp_path, tiny_llama_config(), AWQSpec(32))
    path = tmp_path / "quantized" / "config.json"
    for change, message in (({"version": "gemv"}, "AWQ version 'gemv' is not supported"),
                            ({"bits": 8}, "AWQ with 8 bits is not supported")):
        config = json.loads(path.read_text())
        config["quantization_config"].update(change)
        path.write_text(json.dumps(config))
        with pytest.raises(ValueError, match=message):
            EngineArgs(model=awq, dtype="float32").create_engine_config()
