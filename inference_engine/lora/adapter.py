"""A PEFT LoRA adapter folder, read into the pieces that our (fused) linear layers take.

PEFT saves `adapter_config.json` (r, lora_alpha, target_modules, ...) and
`adapter_model.safetensors` (or `.bin`), holding for each adapted module lora_A [r, in] and
lora_B [out, r] under `base_model.model.<module>.lora_A.weight`. The module computes
y = x W^T + scaling (x A^T) B^T, with scaling = lora_alpha / r (lora_alpha / sqrt(r) with
use_rslora; per-module r and alpha under rank_pattern and alpha_pattern). The scaling is folded
into B here. Checkpoint names of fused projections (q_proj, gate_proj, ...) map onto our
modules through the model's `packed_modules`, as its weights do.
"""
import json
import math
import os
import re
from dataclasses import dataclass

import torch

CONFIG_FILE = "adapter_config.json"
PREFIX = "base_model.model."
_NAME = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])(?:\.default)?\.weight$")


class LoRAError(ValueError):
    """An adapter that can't be served (missing, malformed or of an unsupported kind)."""


@dataclass
class LoRAAdapter:
    rank: int
    # Our module's name -> {shard id (None for an unfused module): (A [r, in], scaled B [out, r])}
    modules: dict[str, dict[object, tuple[torch.Tensor, torch.Tensor]]]


def load_adapter(path: str, packed_modules: dict, max_rank: int) -> LoRAAdapter:
    config = _read_config(path)
    tensors = _read_tensors(path)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        match = _NAME.match(name.removeprefix(PREFIX))
        if match is None:
            raise LoRAError(f"{path}: {name!r} is not a LoRA weight (only lora_A and lora_B of "
                            "linear layers are supported)")
        pairs.setdefault(match["module"], {})[match["part"]] = tensor
    modules: dict[str, dict] = {}
    rank = 0
    for module, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise LoRAError(f"{path}: {module} lacks lora_{'B' if 'A' in pair else 'A'}")
        a, b = pair["A"].float(), pair["B"].float()
        r = a.shape[0]
        if b.shape[1] != r:
            raise LoRAError(f"{path}: {module}'s lora_A and lora_B ranks differ")
        if r > max_rank:
            raise LoRAError(f"{path}: rank {r} is above max_lora_rank {max_rank}")
        rank = max(rank, r)
        alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config["lora_alpha"])
        scaling = alpha / (math.sqrt(r) if config.get("use_rslora") else r)
        parent, _, leaf = module.rpartition(".")
        fused, shard = packed_modules.get(leaf, (leaf, None))
        target = f"{parent}.{fused}" if parent else fused
        modules.setdefault(target, {})[shard] = (a, b * scaling)
    if not modules:
        raise LoRAError(f"{path}: the adapter has no LoRA weights")
    return LoRAAdapter(rank, modules)


def _read_config(path: str) -> dict:
    file = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(file):
        raise LoRAError(f"no LoRA adapter at {path!r} (no {CONFIG_FILE})")
    with open(file) as f:
        config = json.load(f)
    unsupported = {
        "peft_type": config.get("peft_type", "LORA") != "LORA",
        "use_dora": bool(config.get("use_dora")),
        "bias": config.get("bias", "none") != "none" or bool(config.get("lora_bias")),
        "modules_to_save": bool(config.get("modules_to_save")),
        "fan_in_fan_out": bool(config.get("fan_in_fan_out")),
    }
    for key, refused in unsupported.items():
        if refused:
            raise LoRAError(f"{path}: adapters with {key}={config.get(key)!r} are not supported")
    targets = config.get("target_modules") or []
    for leaf in ("embed_tokens", "lm_head"):
        if leaf in targets:
            raise LoRAError(f"{path}: adapters of {leaf} are not supported (linear layers only)")
    return config


def _read_tensors(path: str) -> dict[str, torch.Tensor]:
    safetensors_file = os.path.join(path, "adapter_model.safetensors")
    if os.path.isfile(safetensors_file):
        from safetensors.torch import load_file
        return load_file(safetensors_file)
    bin_file = os.path.join(path, "adapter_model.bin")
    if os.path.isfile(bin_file):
        return torch.load(bin_file, map_location="cpu", weights_only=True)
    raise LoRAError(f"{path}: no adapter_model.safetensors or adapter_model.bin")


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's per-module override: the first key that matches the end of the module's name."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default
