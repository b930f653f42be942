"""What the GPU engine tests share: a tiny random Llama checkpoint with grouped-query attention
(an engine on it: utils.gpu_engine.float32_engine)."""
import pytest

from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint


@pytest.fixture(scope="session")
def tiny_gpu_checkpoint(tmp_path_factory) -> str:
    config = tiny_llama_config(hidden_size=256, intermediate_size=512, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=64, max_position_embeddings=1024)
    return str(write_hf_checkpoint(tmp_path_factory.mktemp("tiny"), config, tokenizer=False))
