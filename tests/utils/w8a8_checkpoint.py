"""W8A8 checkpoints (8-bit weights, 8-bit activations) in the shapes people ship: AutoFP8's `fp8`
(written from its description) and compressed-tensors' `float-quantized` and `int-quantized`
(made by the library's own compressor), each with the weights it stands for.

    path, dequantized = write_w8a8_checkpoint(tmp_path, config, lambda w: autofp8_tensors(w, True))
    path, dequantized = write_w8a8_checkpoint(tmp_path, ct_w8a8_config("int", "channel", "token",
                                              dynamic=True), lambda w: ct_tensors(w, "int", "channel"))
"""
import copy

import torch
from compressed_tensors.compressors.naive_quantized.base import (FloatQuantizationCompressor,
                                                                 IntQuantizationCompressor)
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.utils import calculate_qparams

from inference_engine.model_executor.layers.quantization.fp8 import FP8, FP8_MAX
from utils.hf_checkpoint import random_state_dict, tiny_llama_config, write_hf_checkpoint
from utils.quantized_checkpoint import PROJECTIONS

COMPRESSORS = {"float": FloatQuantizationCompressor, "int": IntQuantizationCompressor}


def autofp8_tensors(weight: torch.Tensor, input_scale: float | None) -> tuple[dict, torch.Tensor]:
    """AutoFP8's tensors of `weight`: FP8 values with one float32 scale, and the input scale when
    static (`input_scale` given); with the weight they stand for."""
    scale = weight.abs().max().float() / FP8_MAX
    values = (weight / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    tensors = {"weight": values, "weight_scale": scale}
    if input_scale is not None:
        tensors["input_scale"] = torch.tensor(input_scale)
    return tensors, values.float() * scale


def ct_tensors(weight: torch.Tensor, kind: str, strategy: str,
               input_scale: float | None = None) -> tuple[dict, torch.Tensor]:
    """compressed-tensors' `kind` ("float" or "int") 8-bit tensors of `weight`, scaled per
    `strategy` ("channel" or "tensor") by the library's own parameters and compressor, and its
    decompression; a static input scale when `input_scale` is given."""
    args = QuantizationArgs(num_bits=8, type=kind, strategy=strategy, symmetric=True)
    low, high = ((weight.amin().reshape(1), weight.amax().reshape(1)) if strategy == "tensor"
                 else (weight.amin(1, keepdim=True), weight.amax(1, keepdim=True)))
    scale, zero_point = calculate_qparams(low, high, args)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    compressor = COMPRESSORS[kind]
    tensors = compressor.compress(
        {"weight": weight, "weight_scale": scale, "weight_zero_point": zero_point}, scheme)
    decompressed = compressor.decompress(dict(tensors), scheme)["weight"]
    tensors = {k: v for k, v in tensors.items() if k != "weight_zero_point"}
    if input_scale is not None:
        tensors["input_scale"] = torch.tensor([input_scale])
    return tensors, decompressed


def ct_w8a8_config(kind: str, weight_strategy: str, input_strategy: str, dynamic: bool) -> dict:
    """The quantization_config of a compressed-tensors W8A8 checkpoint of `kind` (float, int)."""
    inputs = QuantizationArgs(num_bits=8, type=kind, symmetric=True, dynamic=dynamic,
                              strategy=input_strategy)
    weights = QuantizationArgs(num_bits=8, type=kind, strategy=weight_strategy, symmetric=True)
    return {"quant_method": "compressed-tensors",
            "format": f"{kind}-quantized", "ignore": ["lm_head"],
            "config_groups": {"group_0": {
                "targets": ["Linear"], "weights": weights.model_dump(mode="json"),
                "input_activations": inputs.model_dump(mode="json")}}}


def write_w8a8_checkpoint(path, quantization_config: dict, quantize, seed: int = 0,
                          config=None) -> tuple[str, dict]:
    """The folder of a random model of `config` (tiny_llama_config by default) with every
    projection of its decoder layers stored as `quantize(weight)` gives, and the dequantized
    weight of each projection by name."""
    config = config or tiny_llama_config()
    stored, dequantized = {}, {}
    for name, tensor in random_state_dict(config, seed).items():
        module = name.removesuffix(".weight")
        if name.endswith(".weight") and module.rpartition(".")[2] in PROJECTIONS:
            tensors, dequantized[name] = quantize(tensor)
            stored.update({f"{module}.{part}": t for part, t in tensors.items()})
        else:
            stored[name] = tensor
    config = copy.deepcopy(config)
    config.quantization_config = quantization_config
    return write_hf_checkpoint(path, config, state_dict=stored, tokenizer=False), dequantized
