"""Prefix caching end to end on the embedded model (float32, CPU): the same greedy tokens and
prompt logprobs as without it, the shared prefix computed once, every block back at the end."""
import pytest

from inference_engine import LLM, SamplingParams

SYSTEM = ("You are a helpful assistant. Answer every question in one short sentence, plainly, "
          "without lists or headings, and say so when you do not know. ") * 3
QUESTIONS = ["What is the capital of France?", "Name a primary colour.", "What is two plus two?"]
GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)


@pytest.fixture(scope="module")
def cached_llm(embedded_path):
    llm = LLM(dtype="float32", max_model_len=2048, max_num_seqs=64, cpu_kv_cache_space_gib=1.0,
              enable_prefix_caching=True)
    yield llm
    llm.shutdown()


def token_ids(outputs) -> list[list[int]]:
    return [list(o.outputs[0].token_ids) for o in outputs]


def test_same_tokens_as_without_and_the_prefix_computed_once(llm, cached_llm):
    prompts = [SYSTEM + q for q in QUESTIONS]
    expected = token_ids(llm.generate(prompts, GREEDY, use_tqdm=False))
    blocks = cached_llm.llm_engine.scheduler.block_manager
    block_size = blocks.block_size

    # One step prefills all three: the second and third find the first's blocks of SYSTEM, which
    # that same step writes (every layer writes the step's keys and values before attending).
    together = cached_llm.generate(prompts, GREEDY, use_tqdm=False)
    assert token_ids(together) == expected
    lengths = [len(o.prompt_token_ids) for o in together]
    hits_together = blocks.prefix_cache_hits
    assert block_size <= hits_together <= 2 * (min(lengths) // block_size) * block_size

    # Again, after they finished: every full block but the one with each prompt's last token.
    again = cached_llm.generate(prompts, GREEDY, use_tqdm=False)
    assert token_ids(again) == expected
    assert blocks.prefix_cache_hits - hits_together == sum((n - 1) // block_size * block_size
                                                           for n in lengths)
    assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks

    cached_llm.reset_prefix_cache()
    hits = blocks.prefix_cache_hits
    assert token_ids(cached_llm.generate(prompts[:1], GREEDY, use_tqdm=False)) == expected[:1]
    assert blocks.prefix_cache_hits == hits


def test_prompt_logprobs_and_sampling_with_a_cached_prefix(llm, cached_llm):
    prompt = SYSTEM + QUESTIONS[0]
    cached_llm.generate([prompt], GREEDY, use_tqdm=False)  # its prefix is cached now
    with_logprobs = SamplingParams(temperature=0.0, max_tokens=4, prompt_logprobs=1, logprobs=2)
    ours = cached_llm.generate([prompt], with_logprobs, use_tqdm=False)[0]
    reference = llm.generate([prompt], with_logprobs, use_tqdm=False)[0]
    assert len(ours.prompt_logprobs) == len(reference.prompt_logprobs)
    for mine, theirs in zip(ours.prompt_logprobs[1:], reference.prompt_logprobs[1:]):
        assert mine.keys() == theirs.keys()
        for token in mine:
            assert mine[token].logprob == pytest.approx(theirs[token].logprob, abs=1e-4)
    assert list(ours.outputs[0].token_ids) == list(reference.outputs[0].token_ids)

    # Several samples of one request behind a cached prefix: seeded, so both engines agree.
    sampled = SamplingParams(temperature=0.8, n=3, seed=11, max_tokens=8, ignore_eos=True)
    assert ([c.token_ids for c in cached_llm.generate([prompt], sampled, use_tqdm=False)[0].outputs]
            == [c.token_ids for c in llm.generate([prompt], sampled, use_tqdm=False)[0].outputs])


def test_preemption_and_a_follow_up_turn_find_computed_blocks(llm):
    prompts = [SYSTEM + q for q in QUESTIONS] * 2
    params = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
    expected = token_ids(llm.generate(prompts, params, use_tqdm=False))
    small = LLM(dtype="float32", max_model_len=160, num_gpu_blocks_override=10, block_size=16,
                enable_prefix_caching=True)
    try:
        blocks = small.llm_engine.scheduler.block_manager
        outputs = small.generate(prompts, params, use_tqdm=False)
        assert token_ids(outputs) == expected
        assert small.llm_engine.scheduler.num_preemptions_total > 0
        assert blocks.get_num_free_blocks() == 10

        # The next turn of the first conversation: its prompt holds the first answer, whose
        # full blocks were cached when that sequence finished.
        first = outputs[0]
        turn = list(first.prompt_token_ids) + list(first.outputs[0].token_ids) + [198, 42]
        hits = blocks.prefix_cache_hits
        follow_up = small.generate({"prompt_token_ids": turn}, params, use_tqdm=False)[0]
        assert blocks.prefix_cache_hits - hits > len(first.prompt_token_ids)
        reference = llm.generate({"prompt_token_ids": turn}, params, use_tqdm=False)[0]
        assert token_ids([follow_up]) == token_ids([reference])
    finally:
        small.shutdown()


def test_next_chat_turn_finds_the_answer_blocks(cached_llm):
    """A conversation's second turn repeats the first turn's prompt and answer: both were cached
    (the answer's blocks when its sequence finished), so it computes little more than the new
    question."""
    blocks = cached_llm.llm_engine.scheduler.block_manager
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": "Tell me about the history of printing in Europe."}]
    params = SamplingParams(temperature=0.0, max_tokens=40, ignore_eos=True)
    first = cached_llm.chat(messages, params, use_tqdm=False)[0]
    answered = len(first.prompt_token_ids) + len(first.outputs[0].token_ids)
    messages += [{"role": "assistant", "content": first.outputs[0].text},
                 {"role": "user", "content": "And in Asia?"}]
    hits = blocks.prefix_cache_hits
    second = cached_llm.chat(messages, params, use_tqdm=False)[0]
    found = blocks.prefix_cache_hits - hits
    assert found > len(first.prompt_token_ids)  # into the answer
    assert found >= (answered - 1) // blocks.block_size * blocks.block_size - blocks.block_size
    assert len(second.prompt_token_ids) > answered


def test_a_cache_salt_shares_cached_blocks_only_with_the_same_salt(llm, cached_llm):
    blocks = cached_llm.llm_engine.scheduler.block_manager
    prompt = SYSTEM + "Which salt is this?"
    expected = token_ids(llm.generate([prompt], GREEDY, use_tqdm=False))

    def run(salt: str | None) -> int:
        """The prefix-cache hits of one generation of the prompt under `salt`."""
        before = blocks.prefix_cache_hits
        entry = {"prompt": prompt, **({"cache_salt": salt} if salt is not None else {})}
        assert token_ids(cached_llm.generate([entry], GREEDY, use_tqdm=False)) == expected
        return blocks.prefix_cache_hits - before

    cached_llm.reset_prefix_cache()
    assert run("tenant-a") == 0
    assert run("tenant-b") == 0 and run(None) == 0  # other salts, no salt: nothing shared
    assert run("tenant-a") > 0 and run("tenant-b") > 0 and run(None) > 0
    with pytest.raises(ValueError, match="cache_salt must be a non-empty string"):
        cached_llm.generate([{"prompt": prompt, "cache_salt": ""}], GREEDY, use_tqdm=False)
