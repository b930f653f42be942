"""FP8 checkpoints: weights stored in float8 e4m3 with their scales (AutoFP8's and vLLM's `fp8`
method; compressed-tensors' `float-quantized` W8A8-FP8), activations quantized to FP8 at each
call with the checkpoint's static scale or a dynamic one, one scaled matmul per layer.

    weight        float8_e4m3fn [N, K]
    weight_scale  float32 [] or [1] (per tensor), or [N] or [N, 1] (per output channel)
    input_scale   float32 [] or [1] (static activation scales only)

A per-tensor scale of a fused layer's part (q, k, v; gate, up) is spread over that part's rows:
the layer multiplies with a scale per output row (the scaled matmul's row-wise form), so nothing
is requantized. The fused parts read one input, whose static scale is the largest of theirs
(as vLLM takes it).
"""
import torch
from torch import nn

from inference_engine.model_executor.layers.quantization.base import (LinearMethod,
                                                                      QuantizationConfig,
                                                                      shard_parameter)
from inference_engine.model_executor.layers.quantization.fp8 import (FP8, FP8_MAX, Fp8LinearMethod,
                                                                     quantize_rows, scaled_matmul)


def load_row_scales(layer: nn.Module, param: nn.Parameter, loaded: torch.Tensor,
                    *shard) -> None:
    """A checkpoint tensor's scale(s) onto its rows of this rank's [output_size] scales."""
    loaded = loaded.reshape(-1).float()
    if loaded.numel() == 1:  # one scale for the whole checkpoint tensor: every row of it
        loaded = loaded.expand(layer.output_size * (layer.tp_size if layer.output_sharded else 1))
    layer.weight_loader(param, loaded, *shard)


def load_input_scale(param: nn.Parameter, loaded: torch.Tensor, *shard) -> None:
    """The fused parts' static input scales: the largest (they read one input)."""
    param.data.copy_(torch.maximum(param.data, loaded.reshape(1).float()))


def register_scaled_weight(layer: nn.Module, input_size: int, output_size: int,
                           dtype: torch.dtype, static_input: bool, multiple: int) -> None:
    """`weight` [output_size, input_size] of `dtype` with float32 row scales `weight_scale`, and
    with `static_input` the input's scale `input_scale` [1] (FP8 and INT8 W8A8)."""
    if input_size % multiple or output_size % multiple:
        raise ValueError(f"a {dtype} layer of {input_size} inputs and {output_size} outputs on "
                         f"this rank: its matmul needs multiples of {multiple}")
    shard_parameter(layer, "weight", (output_size, input_size), dtype, output_dim=0, input_dim=1)
    scale = shard_parameter(layer, "weight_scale", (output_size,), torch.float32, output_dim=0)
    scale.weight_loader = lambda param, loaded, *shard: load_row_scales(layer, param, loaded,
                                                                        *shard)
    if static_input:
        inp = shard_parameter(layer, "input_scale", (1,), torch.float32)
        inp.data.zero_()
        inp.weight_loader = load_input_scale


class Fp8CheckpointMethod(LinearMethod):
    """FP8 weights as stored; the input quantized per tensor with the checkpoint's scale
    (`static_input`), per token, or per tensor with a scale of its own at each call."""

    def __init__(self, static_input: bool, per_token: bool):
        self.static_input, self.per_token = static_input, per_token

    def create_weights(self, layer: nn.Module, input_size: int, output_size: int,
                       params_dtype: torch.dtype) -> None:
        # The scaled matmul needs multiples of 16.
        register_scaled_weight(layer, input_size, output_size, FP8, self.static_input, 16)

    def apply(self, layer: nn.Module, x: torch.Tensor,
              bias: torch.Tensor | None) -> torch.Tensor:
        if self.per_token:
            x_q, x_scale = quantize_rows(x)
        else:
            scale = (layer.input_scale if self.static_input
                     else x.abs().amax().float().clamp(min=1e-12).reshape(1) / FP8_MAX)
            x_q = (x.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
            x_scale = scale.expand(x.shape[0]).unsqueeze(1).contiguous()
        return scaled_matmul(x_q, x_scale, layer.weight, layer.weight_scale.view(1, -1), bias,
                             x.dtype)


class Fp8Config(QuantizationConfig):
    """`--quantization fp8` on a checkpoint of bf16/fp16/fp32 weights; or a checkpoint stored
    in FP8 (a `quantization_config` of method fp8: AutoFP8's, vLLM's), read as it is."""

    name = "fp8"

    def __init__(self, stored: dict | None = None):
        self.stored = stored

    @classmethod
    def from_config(cls, config: dict) -> "Fp8Config":
        if not config:
            return cls()
        if config.get("weight_block_size"):
            raise ValueError("FP8 checkpoints with block-wise scales (weight_block_size, as "
                             "DeepSeek-V3's) are not supported yet")
        if config.get("activation_scheme", "dynamic") not in ("static", "dynamic"):
            raise ValueError(f"FP8 activation_scheme {config['activation_scheme']!r} is not "
                             "supported (static and dynamic are)")
        for name in config.get("ignored_layers") or []:
            if name != "lm_head" and not name.endswith("gate"):
                raise ValueError(f"FP8 checkpoints with layers left unquantized by name "
                                 f"({name!r}) are not supported yet")
        return cls(config)

    def linear_method(self, layer: nn.Module) -> LinearMethod:
        if self.stored is None:
            return Fp8LinearMethod()
        static = self.stored.get("activation_scheme", "dynamic") == "static"
        return Fp8CheckpointMethod(static_input=static, per_token=False)
