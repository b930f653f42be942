"""KV-cache scales from a checkpoint (`k_scale`/`v_scale`, or older AutoFP8's
`k_proj.output_scale`/`v_proj.output_scale`) with `kv_cache_dtype="fp8"`: keys and values too
large for e4m3 (its largest is 448) are stored divided by them, so an FP8 cache answers as a
float32 cache does where the same cache without the scales saturates; a float32 cache ignores
them; malformed scales are refused."""
import pytest
import torch

from inference_engine import LLM, SamplingParams
from utils.hf_checkpoint import random_state_dict, tiny_llama_config, write_hf_checkpoint

PROMPTS = [[5, 17, 300, 4000, 12], list(range(100, 140)), [7] * 9]
FIRST = SamplingParams(temperature=0, max_tokens=1, logprobs=5)
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


def run(path: str, cache: str) -> tuple[list[dict], float]:
    """Each prompt's first-token logprobs (top 5), and the largest magnitude left in the cache."""
    llm = LLM(path, dtype="float32", skip_tokenizer_init=True, max_model_len=128,
              cpu_kv_cache_space_gib=0.05, kv_cache_dtype=cache)
    try:
        kv_cache = llm.llm_engine.executor.driver.model_runner.cache_engine.kv_cache
        kv_cache.zero_()  # (allocated empty: only what the run writes may count)
        outputs = llm.generate(prompt_token_ids=PROMPTS, sampling_params=FIRST, use_tqdm=False)
        return ([{t: lp.logprob for t, lp in o.outputs[0].logprobs[0].items()} for o in outputs],
                kv_cache.float().abs().max().item())
    finally:
        llm.shutdown()


def top(logprobs: dict) -> int:
    return max(logprobs, key=logprobs.get)


@pytest.mark.parametrize("names", [("k_scale", "v_scale"),
                                   ("k_proj.output_scale", "v_proj.output_scale")])
def test_scaled_fp8_cache_keeps_the_float32_tokens_where_unscaled_saturates(tmp_path, names):
    state = large_kv_state()
    plain = write_hf_checkpoint(tmp_path / "plain", tiny_llama_config(), state_dict=state,
                                tokenizer=False)
    scaled = write_hf_checkpoint(tmp_path / "scaled", tiny_llama_config(),
                                 state_dict=with_scales(state, names), tokenizer=False)
    exact, largest = run(plain, "auto")
    assert largest > 448 * 2  # keys and values beyond e4m3's range
    # Stored divided by the scales, none saturated: each prompt's likeliest first token, and
    # its logprob up to the cache's rounding, as with a float32 cache.
    scaled_first, scaled_largest = run(scaled, "fp8")
    assert scaled_largest < 448
    for ours, theirs in zip(scaled_first, exact):
        assert top(theirs) in ours and ours[top(theirs)] == pytest.approx(theirs[top(theirs)],
                                                                          abs=0.1)
    # Without them the cache saturates, and the answers change (what the scales are for).
    unscaled_first, unscaled_largest = run(plain, "fp8")
    assert unscaled_largest == 448
    assert [top(lp) for lp in unscaled_first] != [top(lp) for lp in exact]
    assert run(scaled, "auto")[0] == exact  # a float32 cache ignores the scales


@pytest.mark.parametrize("value,message", [(torch.ones(2), "per head or channel"),
                                           (torch.tensor(0.0), "must be positive")])
def test_malformed_scales_are_refused(tmp_path, value, message):
    state = with_scales(random_state_dict(tiny_llama_config()), ("k_scale",), value)
    path = write_hf_checkpoint(tmp_path, tiny_llama_config(), state_dict=state, tokenizer=False)
    with pytest.raises(ValueError, match=message):
        run(path, "fp8")
