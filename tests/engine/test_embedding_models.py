"""Embedding models saved as the bare transformer (architectures LlamaModel, Qwen3Model, ...;
no `model.` prefix, no LM head), as e5-mistral, gte-Qwen2 and Qwen3-Embedding ship: their
embeddings are transformers' AutoModel last hidden states, and generation is refused."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from inference_engine import LLM, SamplingParams
from utils.hf_checkpoint import tiny_llama_config, tiny_qwen3_config, write_hf_checkpoint

PROMPTS = [[(7 * i + 3 * j) % 40000 + 5 for j in range(5 + 9 * i)] for i in range(4)]


def bare_checkpoint(path, config) -> str:
    """A random checkpoint rewritten as the bare transformer: names without `model.`, no head."""
    base = config.architectures[0].replace("ForCausalLM", "Model")
    write_hf_checkpoint(path, config.__class__(**{**config.to_dict(), "architectures": [base],
                                                  "tie_word_embeddings": False}), seed=9)
    weights = path / "model.safetensors"
    tensors = {name.removeprefix("model."): t for name, t in load_file(weights).items()
               if name != "lm_head.weight"}
    save_file(tensors, weights, metadata={"format": "pt"})
    return str(path)


@pytest.mark.parametrize("make_config", [tiny_llama_config, tiny_qwen3_config])
def test_bare_transformer_embeds_as_transformers_and_refuses_to_generate(tmp_path, make_config):
    from transformers import AutoModel
    path = bare_checkpoint(tmp_path / "bare", make_config())
    llm = LLM(path, dtype="float32", max_model_len=256, cpu_kv_cache_space_gib=0.1)
    try:
        outputs = llm.embed(prompt_token_ids=PROMPTS, use_tqdm=False)
        with pytest.raises(ValueError, match="no LM head .* embeddings only"):
            llm.generate(prompt_token_ids=PROMPTS[:1], sampling_params=SamplingParams(),
                         use_tqdm=False)
    finally:
        llm.shutdown()
    hf = AutoModel.from_pretrained(path, dtype=torch.float32)
    for prompt, out in zip(PROMPTS, outputs):
        with torch.no_grad():
            hidden = hf(torch.tensor([prompt])).last_hidden_state[0, -1]
        torch.testing.assert_close(torch.tensor(out.outputs.embedding),
                                   torch.nn.functional.normalize(hidden, dim=0),
                                   rtol=1e-4, atol=1e-5)
