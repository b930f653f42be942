"""The quantization seam: a method says which tensors a linear layer holds, how they are
post-processed once loaded, and how the layer multiplies with them.

A `QuantizationConfig` comes from a checkpoint's `quantization_config` (or `--quantization`) and
hands each linear layer its `LinearMethod`. The method registers the layer's parameters with the
attributes the layers' weight loaders shard by:

- `output_dim` / `input_dim`: the dimension that runs along the layer's output / input (None:
  the tensor is whole on every rank along that side);
- `packed_dim` and `pack_factor`: the dimension along which `pack_factor` values share one
  stored element (4-bit values in int32: 8), whose offsets the loaders divide by it.

So column- and row-parallel layers, fused QKV and gate-up included, shard packed weights, scales,
zeros and group indices with no method named outside this package.
"""
import torch
from torch import nn


def set_weight_attrs(param: nn.Parameter, **attrs) -> nn.Parameter:
    for key, value in attrs.items():
        setattr(param, key, value)
    return param


def shard_parameter(layer: nn.Module, name: str, shape: tuple[int, ...], dtype: torch.dtype,
                    **attrs) -> nn.Parameter:
    """An empty parameter `name` of `layer`, loaded through the layer's weight loader."""
    param = nn.Parameter(torch.empty(shape, dtype=dtype), requires_grad=False)
    set_weight_attrs(param, weight_loader=layer.weight_loader, **attrs)
    layer.register_parameter(name, param)
    return param


class LinearMethod:
    """How a linear layer holds and applies its weight."""

    def create_weights(self, layer: nn.Module, input_size: int, output_size: int,
                       params_dtype: torch.dtype) -> None:
        """Registers the layer's parameters for its shard: `input_size` x `output_size`."""
        raise NotImplementedError

    def process_weights_after_loading(self, layer: nn.Module) -> None:
        """Repacks or quantizes what was loaded, once, for the method's kernel."""

    def apply(self, layer: nn.Module, x: torch.Tensor,
              bias: torch.Tensor | None) -> torch.Tensor:
        """x [M, input_size] -> [M, output_size] (+ bias)."""
        raise NotImplementedError


class QuantizationConfig:
    """A quantization method's settings; `name` is its `quant_method` in checkpoints."""

    name: str = ""

    @classmethod
    def from_config(cls, config: dict) -> "QuantizationConfig":
        raise NotImplementedError

    def linear_method(self, layer: nn.Module) -> LinearMethod:
        """The method for `layer` (layers built with quantize=False, such as MoE routers, get
        the unquantized one from the caller)."""
        raise NotImplementedError
