"""LoRA adapters for tests, written by PEFT itself (the format users bring): random A and B
(PEFT starts B at zero, which would change nothing), seeded."""
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def write_lora_adapter(path, base_checkpoint: str, *, rank: int = 8, alpha: float = 16,
                       targets: list[str] = ALL_LINEAR, seed: int = 0, scale: float = 0.2,
                       **lora_kwargs) -> str:
    """An adapter of the checkpoint at `base_checkpoint`, saved at `path` (returned)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        base = AutoModelForCausalLM.from_pretrained(base_checkpoint, dtype=torch.float32)
        model = get_peft_model(base, LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets,
                                                init_lora_weights=False, **lora_kwargs))
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.data.normal_(0.0, scale)
        model.save_pretrained(str(path))
    return str(path)


def peft_model(base_checkpoint: str, adapter: str):
    """transformers with the adapter applied by PEFT: the oracle."""
    from peft import PeftModel
    base = AutoModelForCausalLM.from_pretrained(base_checkpoint, dtype=torch.float32)
    return PeftModel.from_pretrained(base, adapter).eval()
