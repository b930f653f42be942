"""A request's LoRA adapter, as vLLM names it: `LoRARequest(name, int_id, path)`."""
from dataclasses import dataclass


@dataclass(frozen=True)
class LoRARequest:
    """`lora_int_id` (from 1) identifies the adapter everywhere in the engine: requests with
    the same id share its loaded weights and their cached prompt prefixes."""
    lora_name: str
    lora_int_id: int
    lora_path: str

    def __post_init__(self) -> None:
        if self.lora_int_id < 1:
            raise ValueError(f"lora_int_id must be at least 1, got {self.lora_int_id}")
