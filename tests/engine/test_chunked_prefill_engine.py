"""Chunked prefill end to end on the embedded model (float32, CPU): prompts longer than a step's
token budget, computed over several steps beside other requests' decodes, give the tokens of
the same prompts computed whole."""
import pytest

from inference_engine.engine_request import EngineRequest
from inference_engine import LLM, SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=10, ignore_eos=True)


def long_prompts(tokenizer) -> list[list[int]]:
    text = ("The history of the printing press begins in the fifteenth century, when movable type "
            "changed how books were made, sold and read across Europe. ")
    base = tokenizer.encode(text * 12)  # ~300 tokens
    return [base[:300], base[:17], base[:150] + base[:40], base[:5], base[:233]]


def token_ids(outputs) -> list[list[int]]:
    return [list(o.outputs[0].token_ids) for o in outputs]


@pytest.mark.parametrize("extra", [{}, {"async_scheduling": True},
                                   {"enable_prefix_caching": True}])
def test_chunks_give_the_tokens_of_whole_prompts(llm, extra):
    prompts = long_prompts(llm.get_tokenizer())
    expected = token_ids(llm.generate(prompt_token_ids=prompts, sampling_params=GREEDY,
                                      use_tqdm=False))
    chunked = LLM(dtype="float32", max_model_len=512, max_num_seqs=8, max_num_batched_tokens=64,
                  enable_chunked_prefill=True, cpu_kv_cache_space_gib=0.25, **extra)
    try:
        scheduler = chunked.llm_engine.scheduler
        schedule, chunks = scheduler.schedule, []

        def recording_schedule():
            out = schedule()
            assert out.num_batched_tokens <= 64
            chunks.extend(end - start for start, end in out.prefill_chunks.values())
            return out
        scheduler.schedule = recording_schedule
        got = chunked.generate(prompt_token_ids=prompts, sampling_params=GREEDY, use_tqdm=False)
        assert token_ids(got) == expected
        assert max(chunks) <= 64 and len(chunks) > len(prompts)  # the long ones took several
        blocks = scheduler.block_manager
        assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks
    finally:
        chunked.shutdown()


def test_prompt_logprobs_must_fit_one_step(llm):
    chunked = LLM(dtype="float32", max_model_len=512, max_num_seqs=8, max_num_batched_tokens=64,
                  enable_chunked_prefill=True, cpu_kv_cache_space_gib=0.25)
    try:
        prompts = long_prompts(llm.get_tokenizer())
        with pytest.raises(ValueError, match="prompt_logprobs needs the prompt computed in one"):
            chunked.generate(prompt_token_ids=prompts[:1], use_tqdm=False,
                             sampling_params=SamplingParams(max_tokens=2, prompt_logprobs=1))
        # A short one is computed whole, beside a long one's chunks: the same logprobs.
        params = [GREEDY, SamplingParams(temperature=0.0, max_tokens=3, prompt_logprobs=2)]
        got = chunked.generate(prompt_token_ids=[prompts[0], prompts[2][:60]],
                               sampling_params=params, use_tqdm=False)
        want = llm.generate(prompt_token_ids=[prompts[0], prompts[2][:60]],
                            sampling_params=params, use_tqdm=False)
        assert token_ids(got) == token_ids(want)
        for mine, theirs in zip(got[1].prompt_logprobs[1:], want[1].prompt_logprobs[1:]):
            assert mine.keys() == theirs.keys()
            for token in mine:
                assert mine[token].logprob == pytest.approx(theirs[token].logprob, abs=1e-4)
    finally:
        chunked.shutdown()


def test_abort_in_the_middle_of_a_prefill_frees_its_blocks(llm):
    chunked = LLM(dtype="float32", max_model_len=512, max_num_seqs=8, max_num_batched_tokens=64,
                  enable_chunked_prefill=True, enable_prefix_caching=True,
                  cpu_kv_cache_space_gib=0.25, async_scheduling=True)
    try:
        engine = chunked.llm_engine
        prompt = long_prompts(llm.get_tokenizer())[0]
        engine.add_request(EngineRequest("long", None, GREEDY, prompt))
        engine.step()
        engine.step()
        seq = engine.requests["long"].seqs[0]
        assert 0 < seq.num_computed_tokens < len(prompt)  # two chunks in
        engine.abort_request("long")
        while engine.has_unfinished_requests():
            engine.step()
        blocks = engine.scheduler.block_manager
        assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks
        # What the two chunks computed stays cached: the same prompt finds it.
        again = chunked.generate(prompt_token_ids=[prompt], sampling_params=GREEDY, use_tqdm=False)
        want = llm.generate(prompt_token_ids=[prompt], sampling_params=GREEDY, use_tqdm=False)
        assert token_ids(again) == token_ids(want) and blocks.prefix_cache_hits >= 64
    finally:
        chunked.shutdown()
