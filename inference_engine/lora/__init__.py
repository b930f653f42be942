"""LoRA adapters served beside the base model: requests name an adapter, each batch mixes
requests of up to `max_loras` adapters and of none (lora/layers.py says how)."""
from inference_engine.lora.request import LoRARequest

__all__ = ["LoRARequest"]
