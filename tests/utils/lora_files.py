"""LoRA adapters written without PEFT (for machines that lack it, such as the GPU one), and the
oracle that needs no PEFT either: the base checkpoint with each adapter merged into its weights
(W + scaling B A), which the engine must match without LoRA."""
import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")


def _shapes(config) -> dict[str, tuple[int, int]]:
    """(out, in) of each projection of a Llama-style layer."""
    head = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv = (config.num_key_value_heads or config.num_attention_heads) * head
    q, hidden, inter = config.num_attention_heads * head, config.hidden_size, config.intermediate_size
    return {"q_proj": (q, hidden), "k_proj": (kv, hidden), "v_proj": (kv, hidden),
            "o_proj": (hidden, q), "gate_proj": (inter, hidden), "up_proj": (inter, hidden),
            "down_proj": (hidden, inter)}


def write_random_adapter(path, config, *, rank: int = 8, alpha: float = 16.0,
                         targets=ATTENTION + MLP, seed: int = 0, scale: float = 0.1) -> str:
    """A PEFT-format adapter of every layer's `targets`, random A and B (seeded)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(config.num_hidden_layers):
        for leaf in targets:
            out, inp = _shapes(config)[leaf]
            part = "self_attn" if leaf in ATTENTION else "mlp"
            name = f"base_model.model.model.layers.{layer}.{part}.{leaf}"
            tensors[f"{name}.lora_A.weight"] = torch.randn(rank, inp, generator=g) * scale
            tensors[f"{name}.lora_B.weight"] = torch.randn(out, rank, generator=g) * scale
    save_file(tensors, path / "adapter_model.safetensors")
    (path / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": list(targets),
        "bias": "none", "use_rslora": False, "fan_in_fan_out": False}))
    return str(path)


def merged_checkpoint(base: str, adapter: str, path) -> str:
    """The base safetensors checkpoint (one file) with the adapter merged into its weights."""
    path = Path(path)
    shutil.copytree(base, path)
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    scaling = config["lora_alpha"] / config["r"]
    lora = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    weights = load_file(path / "model.safetensors")
    for name, a in lora.items():
        if ".lora_A." in name:
            module = name.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
            b = lora[name.replace(".lora_A.", ".lora_B.")]
            w = weights[f"{module}.weight"]
            weights[f"{module}.weight"] = (w.double() + scaling * (b.double() @ a.double())).to(w.dtype)
    save_file(weights, path / "model.safetensors")
    return str(path)
