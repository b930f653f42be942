"""KV-cache scales from a checkpoint (`k_scale`/`v_scale`, or older AutoFP8's
`k_proj.output_scale`/`v_proj.output_scale`) with `kv_cache_dtype="fp8"`: keys and values too
large for e4m3 (its largest is 448) are stored divided by them, so an FP8 cache generates what a
float32 cache does where the same cache without the scales saturates; a float32 cache ignores
them; malformed scales are refused."""
import pytest
import torch

from inference_engine import LLM, SamplingParams
from utils.hf_checkpoint import random_state_dict, tiny_llama_config, write_hf_checkpoint

PROMPTS = [[5, 17, 300, 4000, 12], list(range(100, 140)), [7] * 9]
GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
BLOW_UP = 3000.0  # k and v projections this many times larger: |k|, |v| in the thousands
SCALE = 20.0


def large_kv_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random model whose keys and values are BLOW_UP times larger, its queries and attention
    output that much smaller: the same model in exact arithmetic."""
    state = random_state_dict(tiny_llama_config(), seed)
    for name in state:
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            state[name] = state[name] * BLOW_UP
        if name.endswith(("q_proj.weight", "o_proj.weight")):
            state[name] = state[name] / BLOW_UP
    return state


def with_scales(state: dict, names: tuple[str, str], value=SCALE) -> dict:
    state = dict(state)
    for layer in range(tiny_llama_config().num_hidden_layers):
        for name in names:
            state[f"model.layers.{layer}.self_attn.{name}"] = torch.as_tensor(value)
    return state


def run(path: str, cache: str) -> tuple[list[list[int]], float]:
    """Greedy tokens, and the largest magnitude left in the KV cache."""
    llm = LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=128,
              cpu_kv_cache_space_gib=0.05, kv_cache_dtype=cache)
    try:
        outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=GREEDY, use_tqdm=False)
        kv_cache = llm.llm_engine.executor.driver.model_runner.cache_engine.kv_cache
        return ([list(o.outputs[0].token_ids) for o in outputs],
                kv_cache.float().abs().max().item())
    finally:
        llm.shutdown()


def tokens(path: str, cache: str) -> list[list[int]]:
    return run(path, cache)[0]


@pytest.mark.parametrize("names", [("k_scale", "v_scale"),
                                   ("k_proj.output_scale", "v_proj.output_scale")])
def test_scaled_fp8_cache_generates_as_float32_where_unscaled_saturates(tmp_path, names):
    state = large_kv_state()
    plain = write_hf_checkpoint(tmp_path / "plain", tiny_llama_config(), state_dict=state,
                                tokenizer=False)
    scaled = write_hf_checkpoint(tmp_path / "scaled", tiny_llama_config(),
                                 state_dict=with_scales(state, names), tokenizer=False)
    exact, largest = run(plain, "auto")
    assert largest > 448 * 2  # keys and values beyond e4m3's range
    # (The FP8 cache's rounding could flip a near tie; this seed's model has none.)
    scaled_tokens, scaled_largest = run(scaled, "fp8")
    assert scaled_tokens == exact and scaled_largest < 448  # stored divided, none saturated
    unscaled_tokens, unscaled_largest = run(plain, "fp8")
    assert unscaled_largest == 448 and unscaled_tokens != exact  # saturated: the scales' reason
    assert tokens(scaled, "auto") == exact  # a float32 cache ignores them


@pytest.mark.parametrize("value,message", [(torch.ones(2), "per head or channel"),
                                           (torch.tensor(0.0), "must be positive")])
def test_malformed_scales_are_refused(tmp_path, value, message):
    state = with_scales(random_state_dict(tiny_llama_config()), ("k_scale",), value)
    path = write_hf_checkpoint(tmp_path, tiny_llama_config(), state_dict=state, tokenizer=False)
    with pytest.raises(ValueError, match=message):
        tokens(path, "fp8")
