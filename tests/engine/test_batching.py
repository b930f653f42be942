"""Continuous batching must not change results: batch invariance, preemption, forks, aborts."""
import random

import pytest

from inference_engine.engine_request import EngineRequest
from inference_engine import LLM, SamplingParams


def mixed_prompts(tokenizer, count: int, seed: int = 0, max_words: int = 120) -> list[list[int]]:
    rng = random.Random(seed)
    words = "the a river mountain quick code python science music 42 café naïve 東京 story".split()
    prompts = []
    for _ in range(count):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, max_words)))
        prompts.append(tokenizer.encode(text))
    return prompts


def free_blocks(llm: LLM) -> int:
    return llm.llm_engine.scheduler.block_manager.get_num_free_blocks()


def test_greedy_alone_equals_in_batch_of_32(llm):
    prompts = mixed_prompts(llm.get_tokenizer(), 32)
    params = SamplingParams(temperature=0, max_tokens=12)
    batched = llm.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)
    for i in (0, 7, 19, 31):
        alone = llm.generate(prompt_token_ids=[prompts[i]], sampling_params=params, use_tqdm=False)
        assert alone[0].outputs[0].token_ids == batched[i].outputs[0].token_ids


def test_seeded_sample_alone_equals_in_batch(llm):
    prompts = mixed_prompts(llm.get_tokenizer(), 8, seed=1)
    seeded = SamplingParams(temperature=0.9, top_p=0.95, seed=1234, max_tokens=16)
    other = SamplingParams(temperature=1.0, max_tokens=16)
    alone = llm.generate(prompt_token_ids=[prompts[3]], sampling_params=seeded, use_tqdm=False)
    batch = llm.generate(prompt_token_ids=prompts,
                         sampling_params=[seeded if i == 3 else other for i in range(8)],
                         use_tqdm=False)
    assert alone[0].outputs[0].text == batch[3].outputs[0].text
    assert alone[0].outputs[0].token_ids == batch[3].outputs[0].token_ids


def test_tiny_kv_budget_preempts_and_still_matches(llm):
    prompts = mixed_prompts(llm.get_tokenizer(), 8, seed=2, max_words=40)
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    expected = llm.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)
    small = LLM(dtype="float32", max_model_len=128, num_gpu_blocks_override=12, block_size=16)
    got = small.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)
    assert small.llm_engine.scheduler.num_preemptions_total > 0
    for e, g in zip(expected, got):
        assert e.outputs[0].token_ids == g.outputs[0].token_ids
    assert free_blocks(small) == 12


def test_prompts_admitted_while_others_decode_match(llm):
    """A small token budget spreads the prompts' prefills over steps that also decode the
    running requests (mixed steps): the tokens must not change."""
    prompts = mixed_prompts(llm.get_tokenizer(), 10, seed=3, max_words=60)
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True)
    expected = llm.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)
    mixed = LLM(dtype="float32", max_model_len=256, max_num_batched_tokens=256,
                cpu_kv_cache_space_gib=0.25)
    scheduler = mixed.llm_engine.scheduler
    schedule, kinds = scheduler.schedule, []

    def counting_schedule():
        out = schedule()
        kinds.append((bool(out.prefill_seq_groups), bool(out.decode_seq_groups)))
        return out
    scheduler.schedule = counting_schedule
    got = mixed.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)
    assert kinds.count((True, True)) >= 2, kinds
    for e, g in zip(expected, got):
        assert e.outputs[0].token_ids == g.outputs[0].token_ids
    assert free_blocks(mixed) == mixed.llm_engine.config.cache_config.num_blocks


def test_n_and_best_of_share_the_prompt_and_free_everything(llm):
    before = free_blocks(llm)
    params = SamplingParams(n=3, temperature=1.0, max_tokens=10, seed=5)
    out = llm.generate("Write a word:", params, use_tqdm=False)[0]
    assert [o.index for o in out.outputs] == [0, 1, 2]
    assert len({tuple(o.token_ids) for o in out.outputs}) > 1
    best = llm.generate("Write a word:", SamplingParams(n=2, best_of=5, temperature=1.0, seed=6,
                                                         max_tokens=10), use_tqdm=False)[0]
    assert len(best.outputs) == 2
    assert best.outputs[0].cumulative_logprob >= best.outputs[1].cumulative_logprob
    assert free_blocks(llm) == before


def test_abort_frees_blocks(llm):
    engine = llm.llm_engine
    before = free_blocks(llm)
    engine.add_request(EngineRequest("to-abort", "Tell me a long story",
                                     SamplingParams(max_tokens=200)))
    engine.add_request(EngineRequest("kept", "Hi", SamplingParams(max_tokens=3, temperature=0)))
    engine.step()
    engine.step()
    assert free_blocks(llm) < before
    engine.abort_request("to-abort")
    while engine.has_unfinished_requests():
        engine.step()
    assert free_blocks(llm) == before


@pytest.mark.parametrize("kwargs,field", [
    ({"max_tokens": 0}, "max_tokens"), ({"temperature": -1.0}, "temperature"),
    ({"top_p": 0.0}, "top_p"), ({"top_p": 1.01}, "top_p")])
def test_bad_sampling_params_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**kwargs)


def test_bad_prompts_are_refused_and_engine_keeps_serving(llm):
    with pytest.raises(ValueError, match="prompt"):
        llm.generate("", SamplingParams(max_tokens=2), use_tqdm=False)
    with pytest.raises(ValueError, match="max_model_len"):
        llm.generate(prompt_token_ids=[[1] * 5000], sampling_params=SamplingParams(), use_tqdm=False)
    with pytest.raises(ValueError, match="prompt"):
        llm.generate(["fine", ""], SamplingParams(max_tokens=2), use_tqdm=False)
    assert not llm.llm_engine.has_unfinished_requests()
    out = llm.generate("Still alive?", SamplingParams(max_tokens=3, temperature=0), use_tqdm=False)
    assert len(out[0].outputs[0].token_ids) == 3
