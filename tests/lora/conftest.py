"""A tiny random Llama and two PEFT adapters of it, written once for the LoRA tests."""
import pytest

from inference_engine.lora import LoRARequest
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint


@pytest.fixture(scope="session")
def base(tmp_path_factory) -> str:
    return write_hf_checkpoint(tmp_path_factory.mktemp("base"), tiny_llama_config(), seed=11)


@pytest.fixture(scope="session")
def adapters(base, tmp_path_factory) -> list[LoRARequest]:
    pytest.importorskip("peft")
    from utils.lora import write_lora_adapter
    every = write_lora_adapter(tmp_path_factory.mktemp("every"), base, rank=8, seed=1)
    some = write_lora_adapter(tmp_path_factory.mktemp("some"), base, rank=4, alpha=4,
                              targets=["q_proj", "v_proj", "down_proj"], seed=2, use_rslora=True)
    return [LoRARequest("every", 1, every), LoRARequest("some", 2, some)]
