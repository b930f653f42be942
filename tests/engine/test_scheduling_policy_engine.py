"""Scheduling policies end to end on the embedded model (float32, CPU): the order changes when
requests run, never what they generate; priorities need the priority policy."""
import pytest

from inference_engine import LLM, SamplingParams


def requests(tokenizer) -> tuple[list[list[int]], list[SamplingParams]]:
    text = "Movable type changed how books were made, sold and read across Europe. " * 6
    base = tokenizer.encode(text)
    prompts = [base[:40], base[:7], base[:90], base[:23], base[:61], base[:12]]
    lengths = [3, 17, 6, 12, 9, 4]
    return prompts, [SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True)
                     for n in lengths]


def run_order(llm: LLM, prompts, params, **kwargs) -> tuple[list[list[int]], list[str]]:
    """The tokens of each request, and the order the engine first scheduled them in."""
    outputs = llm.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False,
                           **kwargs)
    order = sorted(outputs, key=lambda o: o.metrics.first_scheduled_time)
    return [list(o.outputs[0].token_ids) for o in outputs], [o.request_id for o in order]


@pytest.mark.parametrize("extra", [{}, {"enable_chunked_prefill": True,
                                        "max_num_batched_tokens": 32}])
def test_longest_output_first_runs_the_longest_first_with_the_same_tokens(llm, extra):
    prompts, params = requests(llm.get_tokenizer())
    expected, _ = run_order(llm, prompts, params)
    lof = LLM(dtype="float32", max_model_len=512, max_num_seqs=2, cpu_kv_cache_space_gib=0.25,
              scheduling_policy="lof", **extra)
    try:
        got, order = run_order(lof, prompts, params)
        assert got == expected
        # Two sequences at a time: the longest two start together, then the rest by length.
        # (Request ids count up in the order given.)
        lengths = {rid: p.max_tokens for rid, p in zip(sorted(order, key=int), params)}
        assert [lengths[r] for r in order] == sorted(lengths.values(), reverse=True)
        blocks = lof.llm_engine.scheduler.block_manager
        assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks
    finally:
        lof.shutdown()


def test_priorities_order_the_queue_and_need_the_policy(llm):
    prompts, params = requests(llm.get_tokenizer())
    expected, _ = run_order(llm, prompts, params)
    with pytest.raises(ValueError, match="priorities need --scheduling-policy priority"):
        llm.generate(prompt_token_ids=prompts[:1], sampling_params=params[0], priority=[1],
                     use_tqdm=False)
    assert not llm.llm_engine.has_unfinished_requests()
    ranked = LLM(dtype="float32", max_model_len=512, max_num_seqs=1, cpu_kv_cache_space_gib=0.25,
                 scheduling_policy="priority")
    try:
        priority = [3, 0, 5, -2, 3, 1]
        got, order = run_order(ranked, prompts, params, priority=priority)
        assert got == expected
        rank = {rid: p for rid, p in zip(sorted(order, key=int), priority)}
        assert [rank[r] for r in order] == sorted(priority)
        with pytest.raises(ValueError, match="3 prompts but 2 priorities"):
            ranked.generate(prompt_token_ids=prompts[:3], priority=[0, 1], use_tqdm=False)
    finally:
        ranked.shutdown()
