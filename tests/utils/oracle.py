"""transformers as the correctness oracle."""
import torch
from transformers import AutoModelForCausalLM


def hf_greedy(model, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | None) -> list[int]:
    """transformers' own greedy generate for one prompt, on the model's device.

    With eos_token_id None, EOS is ignored: exactly max_new_tokens tokens come back, EOS among
    them wherever it is the greedy choice, as with our engine's ignore_eos. (An explicit None
    overrides the checkpoint's EOS; min_new_tokens would instead forbid EOS and change the tokens.)
    """
    ids = torch.tensor([prompt_ids], device=model.device)
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0,
                             attention_mask=torch.ones_like(ids), eos_token_id=eos_token_id)
    tokens = out[0, len(prompt_ids):].tolist()
    assert eos_token_id is not None or len(tokens) == max_new_tokens, "transformers stopped early"
    return tokens


def assert_greedy_matches_transformers(path: str, prompts: list, max_tokens: int = 16,
                                       ignore_eos: bool = False, **llm_kwargs) -> list:
    """Our engine, batched over `prompts` in float32, generates greedily the very tokens that
    transformers' generate does on the checkpoint folder `path`. Returns the engine's outputs."""
    from inference_engine import LLM, SamplingParams
    llm = LLM(path, dtype="float32", cpu_kv_cache_space_gib=0.25, **llm_kwargs)
    hf = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=ignore_eos)
    eos = None if ignore_eos else llm.get_tokenizer().eos_token_id
    outputs = llm.generate(prompts, params, use_tqdm=False)
    for out in outputs:
        expected = hf_greedy(hf, out.prompt_token_ids, max_tokens, eos)
        assert out.outputs[0].token_ids == expected, out.prompt
    return outputs
