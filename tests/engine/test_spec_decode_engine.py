"""n-gram speculative decoding end to end on the embedded model (float32, CPU): greedy tokens,
log-probabilities, stops and lengths exactly as without drafts, with drafts kept (the prompts
repeat themselves), beside requests that take none, through prefix caching, chunked prefill
and preemption; every block back at the end."""
import pytest

from inference_engine import LLM, SamplingParams
from inference_engine.engine.arg_utils import EngineArgs

PROMPTS = [
    "Repeat this line twice: the quick brown fox jumps over the lazy dog. the quick brown fox",
    "Count with me: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,",
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n",
    "Write a short poem about autumn leaves.",
    "Alice said hello to Bob. Bob said hello to Alice. Alice said hello to Bob. Bob said",
]


def spec_llm(k: int = 3, **kwargs) -> LLM:
    kwargs = {"max_model_len": 2048, "max_num_seqs": 64, "cpu_kv_cache_space_gib": 1.0} | kwargs
    return LLM(dtype="float32", speculative_config={"num_speculative_tokens": k}, **kwargs)


@pytest.fixture(scope="module")
def spec3():
    llm = spec_llm(3)
    yield llm
    llm.shutdown()


def completions(outputs):
    return [(list(c.token_ids), c.text, c.finish_reason) for o in outputs for c in o.outputs]


def all_blocks_free(llm: LLM) -> bool:
    blocks = llm.llm_engine.scheduler.block_manager
    return blocks.get_num_free_blocks() == blocks.allocator.num_blocks


@pytest.mark.parametrize("k", [1, 3, 6])
def test_greedy_tokens_and_logprobs_as_without_drafts(llm, k):
    params = SamplingParams(temperature=0.0, max_tokens=24, logprobs=2, ignore_eos=True)
    expected = llm.generate(PROMPTS, params, use_tqdm=False)
    spec = spec_llm(k)
    try:
        outputs = spec.generate(PROMPTS, params, use_tqdm=False)
        engine = spec.llm_engine
        assert engine.num_accepted_tokens_total > 0  # drafts held: steps gave several tokens
        assert engine.num_draft_tokens_total >= engine.num_accepted_tokens_total
        assert completions(outputs) == completions(expected)
        for ours, theirs in zip(outputs, expected):
            for a, b in zip(ours.outputs[0].logprobs, theirs.outputs[0].logprobs):
                assert a.keys() == b.keys()
                for token in a:
                    assert a[token].logprob == pytest.approx(b[token].logprob, abs=1e-4)
                    assert a[token].rank == b[token].rank
        assert all_blocks_free(spec)
    finally:
        spec.shutdown()


def test_stops_and_lengths_inside_a_steps_tokens(llm, spec3):
    base = SamplingParams(temperature=0.0, max_tokens=30)
    texts = [o.outputs[0].text for o in llm.generate(PROMPTS, base, use_tqdm=False)]
    params = [SamplingParams(temperature=0.0, max_tokens=n) for n in (1, 2, 3, 5, 7)]
    # A stop string from the middle of each expected text, kept or not in the output.
    params += [SamplingParams(temperature=0.0, max_tokens=30, stop=[t[len(t) // 2:][:4]],
                              include_stop_str_in_output=i % 2 == 1)
               for i, t in enumerate(texts) if len(t) > 8]
    prompts = PROMPTS + [p for p, t in zip(PROMPTS, texts) if len(t) > 8]
    assert completions(spec3.generate(prompts, params, use_tqdm=False)) == \
        completions(llm.generate(prompts, params, use_tqdm=False))
    assert all_blocks_free(spec3)


def test_requests_without_drafts_beside_those_with(llm, spec3):
    """Penalties, bad words and min_tokens depend on the tokens before a position: such
    requests decode a token a step, in the same steps as the others."""
    params = [SamplingParams(temperature=0.0, max_tokens=24, repetition_penalty=1.3),
              SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True),
              SamplingParams(temperature=0.0, max_tokens=24, min_tokens=20, bad_words=["fox"]),
              SamplingParams(temperature=0.0, max_tokens=24, frequency_penalty=0.5),
              SamplingParams(temperature=0.0, max_tokens=24, logit_bias={11: 5.0})]
    assert completions(spec3.generate(PROMPTS, params, use_tqdm=False)) == \
        completions(llm.generate(PROMPTS, params, use_tqdm=False))


def test_prefix_caching_chunked_prefill_and_preemption(llm):
    """A cache of 29 blocks for seven sequences of up to ~90 tokens: some are preempted and
    computed again (their drafts' blocks given back first)."""
    params = SamplingParams(temperature=0.0, max_tokens=60, ignore_eos=True)
    prompts = PROMPTS + PROMPTS[:2]
    expected = completions(llm.generate(prompts, params, use_tqdm=False))
    spec = spec_llm(4, enable_prefix_caching=True, enable_chunked_prefill=True,
                    max_num_batched_tokens=48, max_num_seqs=8, cpu_kv_cache_space_gib=0.02,
                    max_model_len=256)
    try:
        assert completions(spec.generate(prompts, params, use_tqdm=False)) == expected
        assert spec.llm_engine.scheduler.num_preemptions_total > 0
        assert spec.llm_engine.num_accepted_tokens_total > 0
        assert all_blocks_free(spec)
    finally:
        spec.shutdown()


def test_seeded_sampling_repeats(spec3):
    params = [SamplingParams(temperature=0.8, top_p=0.9, seed=s, max_tokens=32) for s in range(5)]
    first = completions(spec3.generate(PROMPTS, params, use_tqdm=False))
    assert completions(spec3.generate(PROMPTS, params, use_tqdm=False)) == first


def test_async_scheduling_is_refused_with_drafts(embedded_path):
    args = EngineArgs(speculative_config='{"num_speculative_tokens": 2}', async_scheduling=True)
    with pytest.raises(ValueError, match="async scheduling"):
        args.create_engine_config()
    config = EngineArgs(speculative_config='{"num_speculative_tokens": 2}').create_engine_config()
    assert config.async_scheduling is False and config.speculative_config.num_speculative_tokens == 2


def test_no_drafts_while_the_batch_is_large(llm):
    """disable_by_batch_size (vLLM's): no drafts while that many requests run; here 3, so the
    five prompts draft only once all but two have finished, and give the same tokens."""
    params = SamplingParams(temperature=0.0, max_tokens=16 * 2, ignore_eos=True)
    lengths = [SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)
               for n in (8, 8, 8, 32, 32)]
    expected = completions(llm.generate(PROMPTS, lengths, use_tqdm=False))
    spec = LLM(dtype="float32", max_model_len=2048, cpu_kv_cache_space_gib=0.5,
               speculative_config={"num_speculative_tokens": 3, "disable_by_batch_size": 3})
    try:
        assert completions(spec.generate(PROMPTS, lengths, use_tqdm=False)) == expected
        engine = spec.llm_engine
        drafted = engine.num_draft_tokens_total
        assert 0 < drafted <= 3 * 24 * 2  # only the two long ones, after the first 8 steps
        spec.generate(PROMPTS[:3], params, use_tqdm=False)
        assert engine.num_draft_tokens_total == drafted  # three running: no drafts at all
    finally:
        spec.shutdown()


def test_parallel_samples_share_blocks_and_draft_apart(llm, spec3):
    """n and best_of: the samples share their prompt's blocks until each writes (copy on
    write of the block a step writes first, drafts' blocks their own)."""
    greedy = SamplingParams(n=2, temperature=0.0, max_tokens=16)
    assert completions(spec3.generate(PROMPTS[:2], greedy, use_tqdm=False)) == \
        completions(llm.generate(PROMPTS[:2], greedy, use_tqdm=False))
    seeded = SamplingParams(n=3, best_of=4, temperature=0.7, seed=7, max_tokens=20)
    first = completions(spec3.generate(PROMPTS[:2], seeded, use_tqdm=False))
    assert len(first) == 6
    assert completions(spec3.generate(PROMPTS[:2], seeded, use_tqdm=False)) == first
    assert all_blocks_free(spec3)
