"""A PEFT LoRA adapter folder, read into the pieces that our (fused) linear layers take.

PEFT saves `adapter_config.json` (r, lora_alpha, target_modules, ...) and
`adapter_model.safetensors` (or `.bin`), holding for each adapted module lora_A [r, in] and
lora_B [out, r] under `base_model.model.<module>.lora_A.weight`. The module computes
y = x W^T + scaling (x A^T) B^T, with scaling = lora_alpha / r (lora_alpha / sqrt(r) with
use_rslora; per-module r and alpha under rank_pattern and alpha_pattern). The scaling is folded
into B here. Checkpoint names of fused projections (q_proj, gate_proj, ...) map onto our
modules through the model's `packed_modules`, as its weights do.

The folder is named by a client (POST /v1/load_lora_adapter), so everything read from it is
checked before use: whatever is wrong is a LoRAError that names the file, never an error of the
engine. The shapes against the model's layers are checked by the manager.
"""
import json
import math
import os
import re
import reprlib
from dataclasses import dataclass

import torch

CONFIG_FILE = "adapter_config.json"
SAFETENSORS_FILE, BIN_FILE = "adapter_model.safetensors", "adapter_model.bin"
PREFIX = "base_model.model."
_NAME = re.compile(r"^(?P<module>.+)\.lora_(?P<part>[AB])(?:\.default)?\.weight$")
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class LoRAError(ValueError):
    """An adapter that can't be served (missing, malformed or of an unsupported kind)."""


@dataclass
class LoRAAdapter:
    rank: int
    # Our module's name -> {shard id (None for an unfused module): (A [r, in], scaled B [out, r])}
    modules: dict[str, dict[object, tuple[torch.Tensor, torch.Tensor]]]


def load_adapter(path: str, packed_modules: dict, max_rank: int) -> LoRAAdapter:
    """The adapter in folder `path`, its scaling folded into B; LoRAError if it can't be
    served (whether its shapes fit the model's layers is the caller's to check)."""
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
        if r == 0:
            raise LoRAError(f"{path}: {module} has rank 0 (its lora_A and lora_B are empty)")
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
    if os.path.isfile(path):
        raise LoRAError(f"no LoRA adapter at {path!r}: a file, not a folder with {CONFIG_FILE}")
    file = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(file):
        raise LoRAError(f"no LoRA adapter at {path!r} (no {CONFIG_FILE})")
    try:
        with open(file, encoding="utf-8") as f:
            config = json.load(f)
    except UnicodeDecodeError as exc:
        raise LoRAError(f"{file} is not UTF-8 text: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise LoRAError(f"{file} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise LoRAError(f"{file} can't be read: {exc}") from exc
    if not isinstance(config, dict):
        raise LoRAError(f"{file} is not a JSON object (it holds a {type(config).__name__})")
    _check_fields(file, config)
    unsupported = {
        "peft_type": config.get("peft_type", "LORA") != "LORA",
        "use_dora": bool(config.get("use_dora")),
        "bias": config.get("bias", "none") != "none" or bool(config.get("lora_bias")),
        "modules_to_save": bool(config.get("modules_to_save")),
        "fan_in_fan_out": bool(config.get("fan_in_fan_out")),
    }
    for key, refused in unsupported.items():
        if refused:
            raise LoRAError(f"{path}: adapters with {key}={reprlib.repr(config.get(key))} are "
                            "not supported")
    targets = config.get("target_modules") or []
    for leaf in ("embed_tokens", "lm_head"):
        if leaf in targets:
            raise LoRAError(f"{path}: adapters of {leaf} are not supported (linear layers only)")
    return config


def _is_number(value) -> bool:
    """A finite int or float (a huge int overflows when divided by the rank)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _is_rank(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_regex(key: str) -> bool:
    """A key of rank_pattern or alpha_pattern, which _pattern_value uses as a regex."""
    try:
        re.compile(rf"(.*\.)?({key})$")
    except (re.error, RecursionError, OverflowError):  # OverflowError: a{99999999999}
        return False
    return True


def _is_pattern(value, is_value) -> bool:
    return isinstance(value, dict) and all(_is_regex(k) and is_value(v) for k, v in value.items())


# What each field must be when present and not null: what PEFT takes (it fails on anything
# else), and alphas finite besides, as they make the scaling. lora_alpha is required.
_FIELDS = {
    "r": (_is_rank, "a positive integer"),
    "lora_alpha": (_is_number, "a finite number"),
    "target_modules": (lambda value: isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, str) for v in value)),
        "a string or a list of strings"),
    "alpha_pattern": (lambda value: _is_pattern(value, _is_number),
                      "an object of regular expressions and finite numbers"),
    "rank_pattern": (lambda value: _is_pattern(value, _is_rank),
                     "an object of regular expressions and positive integers"),
}


def _check_fields(file: str, config: dict) -> None:
    if "lora_alpha" not in config:
        raise LoRAError(f"{file} has no lora_alpha")
    for key, (is_valid, what) in _FIELDS.items():
        value = config.get(key)
        if (value is not None or key == "lora_alpha") and not is_valid(value):
            raise LoRAError(f"{file}: {key} must be {what}, not {reprlib.repr(value)}")


def _read_tensors(path: str) -> dict[str, torch.Tensor]:
    safetensors_file, bin_file = os.path.join(path, SAFETENSORS_FILE), os.path.join(path, BIN_FILE)
    if os.path.isfile(safetensors_file):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        file = safetensors_file
        try:
            tensors = load_file(file)  # sizes in the header are checked against the file's
        except (SafetensorError, OSError) as exc:
            raise LoRAError(f"{file} can't be read as safetensors: {exc}") from exc
    elif os.path.isfile(bin_file):
        file = bin_file
        try:
            tensors = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling arbitrary bytes fails in many ways, all the file's
            # (torch's own message would advise the client to load it with weights_only=False)
            raise LoRAError(f"{file} can't be read as a torch checkpoint of tensors "
                            f"({type(exc).__name__})") from exc
    else:
        raise LoRAError(f"{path}: no {SAFETENSORS_FILE} or {BIN_FILE}")
    _check_tensors(file, tensors)
    return tensors


def _check_tensors(file: str, tensors) -> None:
    """Each value a dense 2-D floating-point tensor with data, under a string name (a .bin may
    unpickle to anything that weights_only allows)."""
    if not isinstance(tensors, dict):
        raise LoRAError(f"{file} holds a {type(tensors).__name__}, not a dict of tensors")
    for name, tensor in tensors.items():
        if not isinstance(name, str):
            raise LoRAError(f"{file}: the tensor name {reprlib.repr(name)} is not a string")
        if not isinstance(tensor, torch.Tensor):
            raise LoRAError(f"{file}: {name} is a {type(tensor).__name__}, not a tensor")
        if tensor.layout != torch.strided or tensor.is_meta:
            kind = "meta" if tensor.is_meta else str(tensor.layout).removeprefix("torch.")
            raise LoRAError(f"{file}: {name} is a {kind} tensor; LoRA weights are dense "
                            "tensors with data")
        if tensor.dtype not in _DTYPES:
            raise LoRAError(f"{file}: {name} is of dtype {tensor.dtype}; LoRA weights are "
                            "float16, bfloat16, float32 or float64")
        if tensor.dim() != 2:
            raise LoRAError(f"{file}: {name} has shape {list(tensor.shape)}; LoRA weights are 2-D")


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's per-module override: the first key that matches the end of the module's name."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default
