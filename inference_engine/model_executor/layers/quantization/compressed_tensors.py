"""compressed-tensors checkpoints (llm-compressor's output): the `pack-quantized` format with
integer weights and unquantized activations (W4A16 and W8A16, in groups along the input or one
scale per output channel, symmetric or with zero points), the `float-quantized` W8A8-FP8
(fp8_checkpoint.py multiplies it) and the `int-quantized` W8A8-INT8 (int8.py).

A layer of K inputs and N outputs stores, with p = 32 / bits values per int32:

    weight_packed      int32 [N, K / p]  value (k % p) of weight_packed[n, k // p], lowest first,
                                         offset by 2^(bits-1) (the signed value plus that)
    weight_scale             [N, G]
    weight_zero_point  int32 [N / p, G]  (asymmetric only) packed along the outputs, offset too
    weight_shape       int   [2]         N, K
    weight_g_idx       int32 [K]         (activation ordering "group" only) each input's group

    W[n, k] = weight_scale[n, g] * (q[n, k] - z[n, g]) with g = k // group_size (or g_idx[k])

The offsets cancel in q - z; without zero points z is 2^(bits-1). Once loaded, a layer is put in
the integer-weight layout the kernels read (wna16.py; the packed weight already is, and
act-order's inputs are put in group order). What else the library writes (several config
groups, sparse and FP4 formats) is refused at start.
"""
import torch
from torch import nn

from inference_engine.model_executor.layers.quantization.base import (LinearMethod,
                                                                      QuantizationConfig,
                                                                      shard_parameter)
from inference_engine.model_executor.layers.quantization.fp8_checkpoint import Fp8CheckpointMethod
from inference_engine.model_executor.layers.quantization.int8 import Int8W8A8Method
from inference_engine.model_executor.layers.quantization.wna16 import WNA16Method
from inference_engine.ops.quantized_linear import unpack_int32


class CompressedTensorsW4A16(WNA16Method):
    """Integer weights of 4 or 8 bits, activations as they are (W4A16, W8A16)."""

    def __init__(self, bits: int, group_size: int | None, symmetric: bool, group_order: bool):
        self.bits, self.group_size, self.symmetric = bits, group_size, symmetric
        self.group_order = group_order  # actorder "group": weight_g_idx gives each input's group

    def create_weights(self, layer: nn.Module, input_size: int, output_size: int,
                       params_dtype: torch.dtype) -> None:
        pack = 32 // self.bits
        group = self.group_size or input_size  # None: one scale per output channel
        if input_size % group or input_size % pack or (not self.symmetric and output_size % pack):
            raise ValueError(f"compressed-tensors ({self.bits} bits, groups of {group}) cannot "
                             f"split a layer of {input_size} inputs and {output_size} outputs "
                             "on this rank: fewer tensor-parallel ranks may")
        # Per channel, or in act-order split by the input (each rank's inputs from any group),
        # every rank holds all the groups' scales.
        sharded = layer.input_sharded and layer.tp_size > 1
        groups_split = self.group_size is not None and not (self.group_order and sharded)
        groups_dim = 1 if groups_split else None
        groups = input_size // group if groups_split or not sharded else (
            input_size * layer.tp_size // group)
        shard_parameter(layer, "weight_packed", (output_size, input_size // pack), torch.int32,
                        output_dim=0, input_dim=1, packed_dim=1, pack_factor=pack)
        shard_parameter(layer, "weight_scale", (output_size, groups), params_dtype,
                        output_dim=0, input_dim=groups_dim)
        if not self.symmetric:
            shard_parameter(layer, "weight_zero_point", (output_size // pack, groups),
                            torch.int32, output_dim=0, input_dim=groups_dim, packed_dim=0,
                            pack_factor=pack)
        shard_parameter(layer, "weight_shape", (2,), torch.int64)  # (read, not needed)
        if self.group_order:
            shard_parameter(layer, "weight_g_idx", (input_size,), torch.int32, input_dim=0)
        # g_idx counts the whole input's groups; a rank holding only its own groups' scales
        # counts from its first.
        layer.first_group = layer.tp_rank * input_size // group if groups_split and sharded else 0

    def checkpoint_tensors(self) -> tuple[str, ...]:
        return ("weight_packed", "weight_scale", "weight_zero_point", "weight_shape",
                "weight_g_idx")

    def unpacked(self, layer: nn.Module):
        q = unpack_int32(layer.weight_packed, self.bits, 1)  # [N, K]
        scales = layer.weight_scale.data
        if self.symmetric:
            zeros = torch.full(scales.shape, 1 << (self.bits - 1), device=scales.device)
        else:
            zeros = unpack_int32(layer.weight_zero_point, self.bits, 0)
        g_idx = layer.weight_g_idx.data - layer.first_group if self.group_order else None
        return q, zeros, scales, g_idx


def _refuse(what: str) -> None:
    raise ValueError(f"compressed-tensors {what} is not supported yet (pack-quantized integer "
                     "weights of 4 or 8 bits with unquantized activations, W4A16 and W8A16; "
                     "float-quantized W8A8-FP8; int-quantized W8A8-INT8 are)")


def _int_weights(group: dict) -> LinearMethod:
    """pack-quantized: W4A16, W8A16."""
    if group.get("input_activations") is not None:
        _refuse("pack-quantized with quantized activations")
    weights = group.get("weights") or {}
    if weights.get("type") != "int" or weights.get("num_bits") not in (4, 8):
        _refuse(f"with {weights.get('num_bits')}-bit {weights.get('type')} weights")
    # Activation ordering "weight" only ordered the quantization (groups stay runs of inputs);
    # "group" stored each input's group in weight_g_idx.
    actorder = weights.get("actorder")
    if actorder not in (None, False, "weight", "group"):
        _refuse(f"with activation ordering {actorder!r}")
    strategy = weights.get("strategy")
    if strategy not in ("group", "channel"):
        _refuse(f"with the {strategy!r} strategy")
    if actorder == "group" and strategy != "group":
        _refuse("with activation ordering 'group' and no groups")
    return CompressedTensorsW4A16(weights["num_bits"],
                                  weights.get("group_size") if strategy == "group" else None,
                                  bool(weights.get("symmetric", True)), actorder == "group")


def _fp8(group: dict) -> LinearMethod:
    """float-quantized: W8A8-FP8, weight scales per tensor or channel, activation scales static
    per tensor or dynamic per tensor or token."""
    weights, inputs = group.get("weights") or {}, group.get("input_activations")
    if weights.get("type") != "float" or weights.get("num_bits") != 8:
        _refuse(f"float-quantized with {weights.get('num_bits')}-bit {weights.get('type')} "
                "weights")
    if weights.get("strategy") not in ("tensor", "channel"):
        _refuse(f"float-quantized with the {weights.get('strategy')!r} weight strategy")
    if inputs is None:
        _refuse("float-quantized with unquantized activations (W8A16-FP8)")
    if inputs.get("type") != "float" or inputs.get("num_bits") != 8:
        _refuse("float-quantized with activations other than FP8")
    dynamic, strategy = bool(inputs.get("dynamic", False)), inputs.get("strategy")
    if strategy not in ("tensor", "token") or (strategy == "token" and not dynamic):
        _refuse(f"float-quantized with {'dynamic' if dynamic else 'static'} {strategy} "
                "activation scales")
    return Fp8CheckpointMethod(static_input=not dynamic, per_token=strategy == "token")


def _int8(group: dict) -> LinearMethod:
    """int-quantized: W8A8-INT8, symmetric, weight scales per channel or tensor, activation
    scales dynamic per token or static per tensor."""
    weights, inputs = group.get("weights") or {}, group.get("input_activations")
    if weights.get("type") != "int" or weights.get("num_bits") != 8:
        _refuse(f"int-quantized with {weights.get('num_bits')}-bit {weights.get('type')} weights")
    if weights.get("strategy") not in ("tensor", "channel") or not weights.get("symmetric", True):
        _refuse("int-quantized with weights other than symmetric, per channel or tensor")
    if inputs is None or inputs.get("type") != "int" or inputs.get("num_bits") != 8:
        _refuse("int-quantized with activations other than INT8")
    if not inputs.get("symmetric", True):
        _refuse("int-quantized with asymmetric activations")
    dynamic, strategy = bool(inputs.get("dynamic", False)), inputs.get("strategy")
    if (strategy, dynamic) not in (("token", True), ("tensor", False)):
        _refuse(f"int-quantized with {'dynamic' if dynamic else 'static'} {strategy} "
                "activation scales")
    return Int8W8A8Method(static_input=not dynamic)


class CompressedTensorsConfig(QuantizationConfig):
    name = "compressed-tensors"

    def __init__(self, group: dict, form: str):
        self.group, self.form = group, form

    @classmethod
    def from_config(cls, config: dict) -> "CompressedTensorsConfig":
        if not config:
            raise ValueError("--quantization compressed-tensors needs such a checkpoint (its "
                             "config.json's quantization_config)")
        groups = config.get("config_groups") or {}
        if len(groups) != 1:
            _refuse(f"with {len(groups)} config groups")
        (group,) = groups.values()
        form = group.get("format") or config.get("format")
        if form not in _METHODS:
            _refuse(f"format {form!r}")
        if group.get("targets") != ["Linear"]:
            _refuse(f"targets {group.get('targets')}")
        for name in config.get("ignore") or []:
            if name != "lm_head" and not name.rstrip("$").endswith("gate"):
                _refuse(f"with layers left unquantized by name ({name!r})")
        made = cls(group, form)
        made.linear_method(None)  # its settings, checked now
        return made

    def linear_method(self, layer: nn.Module) -> LinearMethod:
        return _METHODS[self.form](self.group)


_METHODS = {"pack-quantized": _int_weights, "float-quantized": _fp8, "int-quantized": _int8}
