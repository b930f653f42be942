"""LoRA adapters in the engine: greedy outputs token-identical to transformers with PEFT's
adapter applied (float32), in one batch that mixes two adapters and the base model, also when
only one adapter fits a step, with chunked prefill, with prefix caching (whose cached
prompts are per adapter) and with speculative decoding; bad adapters fail their own request."""
import pytest

from inference_engine import LLM, SamplingParams
from inference_engine.lora import LoRARequest
from utils.hf_checkpoint import write_hf_checkpoint
from utils.oracle import hf_greedy

pytest.importorskip("peft")
from utils.lora import peft_model, write_lora_adapter  # noqa: E402  (needs peft)

PROMPTS = ["Hello, my name is", "The quick brown fox jumps over the lazy dog and then",
           "2 + 2 =", "Once upon a time"]
MAX_TOKENS = 12
GREEDY = SamplingParams(temperature=0, max_tokens=MAX_TOKENS, ignore_eos=True)


@pytest.fixture(scope="module")
def expected(base, adapters) -> dict:
    """transformers' (with PEFT's adapter) greedy tokens per adapter name (None: the base
    model), for the prompts as the engine tokenizes them."""
    import torch
    from transformers import AutoModelForCausalLM
    models = {None: AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()}
    models.update({a.lora_name: peft_model(base, a.lora_path) for a in adapters})
    prompt_ids = [out.prompt_token_ids for out in LLM(base, dtype="float32",
                                                      cpu_kv_cache_space_gib=0.1).generate(
        PROMPTS, SamplingParams(max_tokens=1), use_tqdm=False)]
    return {name: [hf_greedy(model, ids, MAX_TOKENS, None) for ids in prompt_ids]
            for name, model in models.items()}


def make_llm(base, **kwargs) -> LLM:
    return LLM(base, dtype="float32", cpu_kv_cache_space_gib=0.1, block_size=8,
               enable_lora=True, max_lora_rank=8, **kwargs)


def run_mixed(llm, adapters) -> dict:
    """Every prompt under every adapter and the base model, all in one generate call."""
    choices = [None, *adapters]
    requests = [(p, c) for c in choices for p in PROMPTS]
    outputs = llm.generate([p for p, _ in requests], GREEDY, use_tqdm=False,
                           lora_request=[c for _, c in requests])
    got: dict = {}
    for (_, choice), out in zip(requests, outputs):
        got.setdefault(choice.lora_name if choice else None, []).append(out.outputs[0].token_ids)
    return got


@pytest.mark.parametrize("kwargs", [
    {"max_loras": 2},
    {"max_loras": 1},  # one adapter's requests at a time; the base model's beside either
    {"max_loras": 2, "enable_chunked_prefill": True, "max_num_batched_tokens": 16,
     "max_num_seqs": 16},
    {"max_loras": 2, "enable_prefix_caching": True},
    {"max_loras": 2, "speculative_config": {"num_speculative_tokens": 3}},  # drafts per adapter
])
def test_mixed_adapters_match_peft(base, adapters, expected, kwargs):
    llm = make_llm(base, **kwargs)
    assert run_mixed(llm, adapters) == expected
    if kwargs.get("speculative_config"):
        assert llm.llm_engine.num_accepted_tokens_total > 0
    if kwargs.get("enable_prefix_caching"):  # again, from the cache: the adapters kept apart
        assert run_mixed(llm, adapters) == expected
        assert llm.llm_engine.scheduler.block_manager.prefix_cache_hits > 0


def test_adapters_differ_from_the_base_model(expected):
    assert expected["every"] != expected[None] and expected["some"] != expected[None]


def test_bad_adapters_fail_their_request(base, adapters, tmp_path):
    llm = make_llm(base, max_loras=1)
    big = write_lora_adapter(tmp_path / "big", base, rank=16, seed=3)
    bad = {LoRARequest("missing", 7, str(tmp_path / "nowhere")): "no LoRA adapter",
           LoRARequest("big", 8, big): "above max_lora_rank 8"}
    for request, message in bad.items():
        with pytest.raises(ValueError, match=message):
            llm.generate(PROMPTS[:1], GREEDY, use_tqdm=False, lora_request=request)
    out = llm.generate(PROMPTS[:1], GREEDY, use_tqdm=False, lora_request=adapters[0])
    assert out[0].outputs[0].token_ids  # the engine goes on
    plain = LLM(base, dtype="float32", cpu_kv_cache_space_gib=0.1)
    with pytest.raises(ValueError, match="enable_lora"):
        plain.generate(PROMPTS[:1], GREEDY, use_tqdm=False, lora_request=adapters[0])


def test_an_adapter_of_phi3s_fused_projections_matches_peft(tmp_path):
    """Phi-3 stores q/k/v and gate/up fused, and so do its adapters: one A and B for each."""
    import torch
    from transformers import AutoModelForCausalLM
    from utils.hf_checkpoint import tiny_phi3_config
    phi3 = write_hf_checkpoint(tmp_path / "phi3", tiny_phi3_config(), seed=4)
    path = write_lora_adapter(tmp_path / "adapter", phi3, rank=4, seed=3,
                              targets=["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])
    lora = LoRARequest("phi3", 1, path)
    llm = make_llm(phi3)
    outputs = llm.generate(PROMPTS, GREEDY, use_tqdm=False, lora_request=lora)
    oracle = peft_model(phi3, path)
    plain = AutoModelForCausalLM.from_pretrained(phi3, dtype=torch.float32).eval()
    for out in outputs:
        want = hf_greedy(oracle, out.prompt_token_ids, MAX_TOKENS, None)
        assert out.outputs[0].token_ids == want
        assert want != hf_greedy(plain, out.prompt_token_ids, MAX_TOKENS, None)
