"""Async scheduling (a step launched before the previous one's tokens are read) must give the
synchronous engine's results token for token, drop the token computed past a stop, and free
every block."""
import asyncio

import pytest

from inference_engine.engine_request import EngineRequest
from inference_engine import LLM, SamplingParams
from inference_engine.config import (CacheConfig, EngineConfig, ModelConfig, ParallelConfig,
                                     SchedulerConfig)
from inference_engine.engine.async_engine import AsyncLLMEngine
from inference_engine.outputs import RequestOutputKind
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint

from test_batching import free_blocks, mixed_prompts

SETTINGS = dict(dtype="float32", max_model_len=2048, max_num_seqs=64, cpu_kv_cache_space_gib=1.0)
PROMPT = "Count: 1, 2, 3, 4, 5, 6, 7, 8,"


@pytest.fixture(scope="module")
def async_llm(embedded_path):
    return LLM(async_scheduling=True, **SETTINGS)


def generate_both(sync_llm: LLM, async_llm: LLM, prompts, params):
    """Runs the same batch through both engines; asserts the async one ends with nothing in
    flight and every block free, and that both counted the same generated tokens."""
    engines = sync_llm.llm_engine, async_llm.llm_engine
    before = [e.num_generation_tokens_total for e in engines]
    kwargs = dict(sampling_params=params, use_tqdm=False)
    if isinstance(prompts[0], str):
        expected, got = sync_llm.generate(prompts, **kwargs), async_llm.generate(prompts, **kwargs)
    else:
        expected = sync_llm.generate(prompt_token_ids=prompts, **kwargs)
        got = async_llm.generate(prompt_token_ids=prompts, **kwargs)
    engine = async_llm.llm_engine
    assert engine.in_flight is None and not engine.has_unfinished_requests()
    assert free_blocks(async_llm) == engine.config.cache_config.num_blocks
    generated = [e.num_generation_tokens_total - b for e, b in zip(engines, before)]
    assert generated[0] == generated[1] >= sum(len(c.token_ids) for o in got for c in o.outputs)
    return expected, got


def assert_same(expected, got):
    for e, g in zip(expected, got, strict=True):
        assert len(e.outputs) == len(g.outputs)
        for a, b in zip(e.outputs, g.outputs):
            assert a.token_ids == b.token_ids
            assert a.text == b.text
            assert (a.finish_reason, a.stop_reason) == (b.finish_reason, b.stop_reason)
            assert a.cumulative_logprob == pytest.approx(b.cumulative_logprob, rel=1e-4, abs=1e-4)


def test_switch_defaults_off_on_cpu_and_with_tensor_parallelism(llm, async_llm):
    assert llm.llm_engine.async_scheduling is False
    assert async_llm.llm_engine.async_scheduling is True
    config = llm.llm_engine.config
    model = ModelConfig(model=config.model_config.model, device="cpu")
    default = EngineConfig(model, CacheConfig(), SchedulerConfig(), ParallelConfig())
    assert default.async_scheduling is False
    tp2 = EngineConfig(model, CacheConfig(), SchedulerConfig(),
                       ParallelConfig(tensor_parallel_size=2))
    assert tp2.async_scheduling is False  # asked for explicitly (tests/distributed)


def test_greedy_batch_with_different_lengths_matches_sync(llm, async_llm):
    prompts = mixed_prompts(llm.get_tokenizer(), 12, seed=4, max_words=50)
    params = [SamplingParams(temperature=0, max_tokens=3 + 2 * i, ignore_eos=True)
              for i in range(len(prompts))]
    expected, got = generate_both(llm, async_llm, prompts, params)
    assert [len(o.outputs[0].token_ids) for o in got] == [p.max_tokens for p in params]
    assert_same(expected, got)


def test_stops_end_at_the_same_token_and_text(llm, async_llm):
    full = llm.generate(PROMPT, SamplingParams(temperature=0, max_tokens=12), use_tqdm=False)
    tokens = full[0].outputs[0].token_ids
    params = [SamplingParams(temperature=0, max_tokens=12, stop=[" 10"]),
              SamplingParams(temperature=0, max_tokens=12, stop=[" 10"],
                             include_stop_str_in_output=True),
              SamplingParams(temperature=0, max_tokens=12, stop_token_ids=[tokens[4]]),
              SamplingParams(temperature=0, max_tokens=12, stop_token_ids=[tokens[0]],
                             min_tokens=5),
              SamplingParams(temperature=0, max_tokens=12, logprobs=2)]
    expected, got = generate_both(llm, async_llm, [PROMPT] * len(params), params)
    assert [o.outputs[0].finish_reason for o in got] == ["stop"] * 4 + ["length"]
    assert got[2].outputs[0].token_ids == tokens[:tokens.index(tokens[4]) + 1]
    assert_same(expected, got)
    for e, g in zip(expected[4].outputs[0].logprobs, got[4].outputs[0].logprobs):
        assert e.keys() == g.keys()


def test_eos_ends_chat_answers_as_in_sync(llm, async_llm):
    conversations = [[{"role": "user", "content": text}]
                     for text in ("Say hello.", "Name a color.", "Write a long poem about rivers.")]
    params = SamplingParams(temperature=0, max_tokens=40)
    expected = llm.chat(conversations, params, use_tqdm=False)
    got = async_llm.chat(conversations, params, use_tqdm=False)
    assert any(o.outputs[0].finish_reason == "stop" for o in got)
    assert_same(expected, got)
    assert free_blocks(async_llm) == async_llm.llm_engine.config.cache_config.num_blocks


def test_requests_that_need_host_tokens_mixed_with_others_match_sync(llm, async_llm):
    """Forks drain the step in flight; penalties count its token on the device."""
    prompts = mixed_prompts(llm.get_tokenizer(), 6, seed=5, max_words=30)
    params = [SamplingParams(temperature=0, max_tokens=10),
              SamplingParams(temperature=0, max_tokens=10, presence_penalty=1.5),
              SamplingParams(temperature=0.9, n=2, seed=11, max_tokens=8),
              SamplingParams(temperature=0, max_tokens=9, repetition_penalty=1.3,
                             frequency_penalty=0.5),
              SamplingParams(temperature=1.0, n=2, best_of=3, seed=12, max_tokens=6),
              SamplingParams(temperature=0, max_tokens=7, min_tokens=5, logprobs=1)]
    assert_same(*generate_both(llm, async_llm, prompts, params))


def test_penalties_count_the_token_in_flight(llm, async_llm):
    """Penalised requests run ahead (no drain): their output counts take the token still on the
    device from the last step, so every token equals the synchronous engine's."""
    prompts = mixed_prompts(llm.get_tokenizer(), 4, seed=9, max_words=20)
    params = [SamplingParams(temperature=0, max_tokens=24, presence_penalty=1.0),
              SamplingParams(temperature=0, max_tokens=24, frequency_penalty=0.8),
              SamplingParams(temperature=0, max_tokens=24, repetition_penalty=1.4),
              SamplingParams(temperature=0.8, seed=3, max_tokens=24, frequency_penalty=0.5,
                             presence_penalty=0.5)]
    plain = [SamplingParams(temperature=0, max_tokens=24)] * 3 + [params[3]]
    expected, got = generate_both(llm, async_llm, prompts, params)
    assert_same(expected, got)
    unpenalised = llm.generate(prompt_token_ids=prompts, sampling_params=plain, use_tqdm=False)
    # The penalties change the greedy tokens, so a miscounted in-flight token would show.
    assert sum(a.outputs[0].token_ids != b.outputs[0].token_ids
               for a, b in zip(expected[:3], unpenalised[:3])) >= 2


def test_seeded_sampling_matches_sync(llm, async_llm):
    prompts = mixed_prompts(llm.get_tokenizer(), 8, seed=6, max_words=30)
    params = [SamplingParams(temperature=0.8, top_p=0.9, top_k=50, seed=100 + i,
                             max_tokens=6 + i, stop=["."]) for i in range(len(prompts))]
    assert_same(*generate_both(llm, async_llm, prompts, params))


def test_preemption_under_a_tiny_cache_keeps_every_token(llm):
    prompts = mixed_prompts(llm.get_tokenizer(), 6, seed=2, max_words=30)
    params = [SamplingParams(temperature=0, max_tokens=12 + i, ignore_eos=True) for i in range(6)]
    small = dict(dtype="float32", max_model_len=96, num_gpu_blocks_override=7, block_size=16)
    sync_small, async_small = (LLM(async_scheduling=flag, **small) for flag in (False, True))
    expected, got = generate_both(sync_small, async_small, prompts, params)
    assert async_small.llm_engine.scheduler.num_preemptions_total > 0
    assert_same(expected, got)


def test_tiny_random_llama_runs_to_max_model_len_as_in_sync(tmp_path_factory):
    path = write_hf_checkpoint(tmp_path_factory.mktemp("tiny") / "llama", tiny_llama_config(),
                               seed=7)
    settings = dict(dtype="float32", max_model_len=48, block_size=8, cpu_kv_cache_space_gib=0.05)
    sync_llm, async_llm = (LLM(path, async_scheduling=flag, **settings) for flag in (False, True))
    prompts = [[5 + i] * (3 + 7 * i) for i in range(6)]
    params = [SamplingParams(temperature=0, max_tokens=None, ignore_eos=True),
              SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)] * 3
    expected, got = generate_both(sync_llm, async_llm, prompts, params)
    for prompt, p, out in zip(prompts, params, got):
        assert len(prompt) + len(out.outputs[0].token_ids) == (
            48 if p.max_tokens is None else min(48, len(prompt) + 10))
    assert_same(expected, got)


def test_abort_with_a_step_in_flight_frees_everything(async_llm):
    engine = async_llm.llm_engine
    total = engine.config.cache_config.num_blocks
    engine.add_request(EngineRequest("abort-me", "Tell me a long story",
                                     SamplingParams(max_tokens=200)))
    engine.add_request(EngineRequest("keep", "Hi", SamplingParams(max_tokens=4, temperature=0)))
    engine.step()
    assert engine.in_flight is not None
    engine.abort_request("abort-me")
    outputs = []
    while engine.has_unfinished_requests():
        outputs += engine.step()
    assert {o.request_id for o in outputs} == {"keep"}
    assert len([o for o in outputs if o.finished]) == 1
    assert engine.in_flight is None and free_blocks(async_llm) == total
    assert all(seq.num_pending == 0 for g in (engine.scheduler.running, engine.scheduler.waiting)
               for group in g for seq in group.seqs)


def test_streamed_deltas_add_up_to_the_sync_result(llm, async_llm):
    prompts = ["Hello, my name is", PROMPT, "The best way to learn"]
    params = SamplingParams(temperature=0, max_tokens=14)
    expected = llm.generate(prompts, params, use_tqdm=False)
    served = AsyncLLMEngine(async_llm.llm_engine)

    async def stream(i: int) -> tuple[list[int], str]:
        tokens, text = [], ""
        async for out in served.generate(EngineRequest(f"s{i}", prompts[i], params,
                                                       output_kind=RequestOutputKind.DELTA)):
            tokens += out.outputs[0].token_ids if out.outputs else []
            text += out.outputs[0].text if out.outputs else ""
        return tokens, text

    async def run_all():
        try:
            return await asyncio.gather(*(stream(i) for i in range(len(prompts))))
        finally:
            await served.shutdown()

    for e, (tokens, text) in zip(expected, asyncio.run(run_all())):
        assert (tokens, text) == (e.outputs[0].token_ids, e.outputs[0].text)
