"""compressed-tensors checkpoints made by the format's own library (its quantization parameters,
its PackedQuantizationCompressor), W4A16 and W8A16, grouped or per channel, symmetric or not:
our dequantized weights equal the library's decompression, a whole checkpoint generates the
tokens of the float model built from the library's decompressed weights (float32, CPU), over 2
ranks as on 1; other formats are refused at start."""
import copy
import json

import pytest
import torch
from compressed_tensors.compressors.pack_quantized import PackedQuantizationCompressor
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from compressed_tensors.quantization.utils import calculate_qparams

from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.model_executor.layers.linear import LinearBase
from inference_engine.model_executor.layers.quantization import building_with
from inference_engine.model_executor.layers.quantization.compressed_tensors import (
    CompressedTensorsConfig)
from inference_engine.ops.quantized_linear import pack_int32, unpack_int32
from utils.hf_checkpoint import random_state_dict, tiny_llama_config, write_hf_checkpoint
from utils.quantized_checkpoint import PROJECTIONS, greedy_tokens

SCHEMES = [dict(num_bits=4, symmetric=True, strategy="group", group_size=32),
           dict(num_bits=4, symmetric=False, strategy="group", group_size=64),
           dict(num_bits=8, symmetric=True, strategy="channel"),
           dict(num_bits=8, symmetric=False, strategy="group", group_size=32)]


def compress(weight: torch.Tensor, args: QuantizationArgs) -> tuple[dict, torch.Tensor]:
    """The library's compressed tensors of `weight` [N, K], and its decompression of them."""
    grouped = weight.unflatten(1, (-1, args.group_size or weight.shape[1]))
    scale, zero_point = calculate_qparams(grouped.amin(-1), grouped.amax(-1), args)
    scheme = QuantizationScheme(targets=["Linear"], weights=args)
    state = {"weight": weight, "weight_scale": scale}
    if not args.symmetric:
        state["weight_zero_point"] = zero_point
    compressed = PackedQuantizationCompressor.compress(state, scheme)
    return compressed, PackedQuantizationCompressor.decompress(compressed, scheme)["weight"]


def compress_in_group_order(weight: torch.Tensor, args: QuantizationArgs,
                            seed: int) -> tuple[dict, torch.Tensor]:
    """Activation ordering "group" (older llm-compressor; the library now refuses to make it),
    from its description: the inputs quantized in a shuffled order by the library, stored back
    in their own order with each one's group in weight_g_idx."""
    order = torch.randperm(weight.shape[1], generator=torch.Generator().manual_seed(seed))
    tensors, dequantized = compress(weight[:, order], args)
    back = torch.argsort(order)  # input k was quantized at position back[k]
    q = unpack_int32(tensors["weight_packed"], args.num_bits, 1)[:, back]
    tensors["weight_packed"] = pack_int32(q, args.num_bits, 1)
    tensors["weight_g_idx"] = (back // args.group_size).to(torch.int32)
    return tensors, dequantized[:, back]


def quantization_config(args: QuantizationArgs, group_order: bool = False) -> dict:
    weights = args.model_dump(mode="json") | ({"actorder": "group"} if group_order else {})
    return {"quant_method": "compressed-tensors", "format": "pack-quantized",
            "quantization_status": "compressed", "ignore": ["lm_head"],
            "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": None,
                                          "weights": weights}}}


def write_checkpoint(path, args: QuantizationArgs, seed: int = 0,
                     group_order: bool = False) -> tuple[str, str]:
    """(compressed-tensors folder, float twin of the library's decompressed weights)."""
    config = tiny_llama_config()
    state = random_state_dict(config, seed)
    compressed, floats = {}, {}
    for name, tensor in state.items():
        module = name.removesuffix(".weight")
        if name.endswith(".weight") and module.rpartition(".")[2] in PROJECTIONS:
            # Layers reading one input (q, k, v; gate, up) share its order, as GPTQ makes them.
            reads = module.rpartition(".")[0] + module.endswith(("o_proj", "down_proj")) * ".o"
            tensors, floats[name] = (
                compress_in_group_order(tensor, args, sum(map(ord, reads)) + seed)
                if group_order else compress(tensor, args))
            compressed.update({f"{module}.{part}": t for part, t in tensors.items()})
        else:
            compressed[name] = floats[name] = tensor
    twin = write_hf_checkpoint(path / "float", config, state_dict=floats, tokenizer=False)
    config = copy.deepcopy(config)
    config.quantization_config = quantization_config(args, group_order)
    return write_hf_checkpoint(path / "ct", config, state_dict=compressed, tokenizer=False), twin


@pytest.mark.parametrize("scheme", SCHEMES, ids=str)
def test_dequantized_as_the_library_decompresses(scheme):
    args = QuantizationArgs(type="int", **scheme)
    weight = torch.randn(48, 128, generator=torch.Generator().manual_seed(3))
    tensors, expected = compress(weight, args)
    config = CompressedTensorsConfig.from_config(quantization_config(args))
    with building_with(config):
        layer = LinearBase(128, 48, bias=False)
    for name, tensor in tensors.items():
        getattr(layer, name).data.copy_(tensor)
    layer.quant_method.process_weights_after_loading(layer)
    eye = torch.eye(128)  # (128 rows: the dequantized weight's product)
    torch.testing.assert_close(layer(eye).t(), expected, rtol=0, atol=1e-6)
    x = torch.randn(3, 128)  # (a few rows: the packed weight's)
    torch.testing.assert_close(layer(x), x @ expected.t(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES, ids=str)
def test_a_checkpoint_generates_as_the_librarys_decompressed_twin(tmp_path, scheme):
    folder, twin = write_checkpoint(tmp_path, QuantizationArgs(type="int", **scheme), seed=2)
    config = EngineArgs(model=folder, dtype="float32").create_engine_config().model_config
    assert config.quantization == "compressed-tensors"
    assert greedy_tokens(folder) == greedy_tokens(twin)


def test_two_ranks_generate_as_one(tmp_path):
    args = QuantizationArgs(type="int", num_bits=4, symmetric=False, strategy="group",
                            group_size=32)
    folder, _ = write_checkpoint(tmp_path, args, seed=4)
    assert greedy_tokens(folder, tensor_parallel_size=2) == greedy_tokens(folder)


def test_group_activation_order_generates_as_its_twin_on_one_rank_and_two(tmp_path):
    """Over two ranks the row-parallel layers' inputs come from any group: all scales kept."""
    args = QuantizationArgs(type="int", num_bits=4, symmetric=True, strategy="group",
                            group_size=32)
    folder, twin = write_checkpoint(tmp_path, args, seed=6, group_order=True)
    tokens = greedy_tokens(folder)
    assert tokens == greedy_tokens(twin)
    assert greedy_tokens(folder, tensor_parallel_size=2) == tokens


@pytest.mark.parametrize("change,message", [
    ({"format": "sparse-bitmask"}, "format 'sparse-bitmask' is not supported yet"),
    ({"input_activations": {"num_bits": 8, "type": "int"}}, "with quantized activations"),
    ({"weights": {"num_bits": 4, "type": "int", "strategy": "channel",
                  "actorder": "group"}}, "activation ordering 'group' and no groups"),
])
def test_other_formats_are_refused_at_start(tmp_path, change, message):
    folder, _ = write_checkpoint(tmp_path, QuantizationArgs(type="int", num_bits=4,
                                                            strategy="group", group_size=32))
    path = tmp_path / "ct" / "config.json"
    config = json.loads(path.read_text())
    config["quantization_config"]["config_groups"]["group_0"].update(change)
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=message):
        EngineArgs(model=folder, dtype="float32").create_engine_config()
