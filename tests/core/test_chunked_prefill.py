"""Chunked prefill in the scheduler: long prompts split to fit each step's token budget beside the
decodes, blocks allocated once, cached prefixes keyed only as far as they are scheduled."""
import pytest

from inference_engine.config import CacheConfig, SchedulerConfig
from inference_engine.core.scheduler import Scheduler
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus


def make_scheduler(budget: int, num_blocks: int = 64, prefix_caching: bool = False) -> Scheduler:
    cache = CacheConfig(block_size=4, watermark=0.0, enable_prefix_caching=prefix_caching)
    cache.num_blocks = num_blocks
    return Scheduler(SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=budget,
                                     max_model_len=128, enable_chunked_prefill=True), cache)


def add(scheduler: Scheduler, seq_id: int, tokens, **params) -> SequenceGroup:
    seq = Sequence(seq_id, list(tokens))
    group = SequenceGroup(str(seq_id), None, seq.prompt_token_ids, SamplingParams(**params), seq)
    scheduler.add_seq_group(group)
    return group


def sample(out) -> None:
    """What the engine does with a step's samples: one token for each sequence that sampled."""
    for group in out.scheduled_seq_groups:
        seq = group.seqs[0]
        start, end = out.prefill_chunks.get(seq.seq_id, (0, len(seq)))
        if end == len(seq):
            seq.append_token(1, 0.0)


def test_config_lets_the_budget_fall_below_max_model_len():
    assert SchedulerConfig(max_model_len=32768, enable_chunked_prefill=True).max_num_batched_tokens == 8192
    SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=16, max_model_len=4096,
                    enable_chunked_prefill=True)
    with pytest.raises(ValueError, match="or enable chunked prefill"):
        SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=16, max_model_len=4096)
    with pytest.raises(ValueError, match="must be >= max_num_seqs"):
        SchedulerConfig(max_num_seqs=32, max_num_batched_tokens=16, enable_chunked_prefill=True)


def test_long_prompt_in_chunks_beside_decodes():
    s = make_scheduler(budget=8)
    short = add(s, 0, range(3))
    out = s.schedule()
    assert out.prefill_chunks == {0: (0, 3)}
    sample(out)
    long = add(s, 1, range(100, 120))
    seq = long.seqs[0]
    steps = []
    while seq.is_prefilling or not seq.output_token_ids:
        out = s.schedule()
        assert out.num_batched_tokens <= 8 and short in out.decode_seq_groups
        steps.append(out.prefill_chunks[1])
        assert len(seq.block_table) == 5  # every block at admission
        sample(out)
    assert steps == [(0, 7), (7, 14), (14, 20)]
    assert len(seq.output_token_ids) == 1  # sampled once, after the last chunk
    out = s.schedule()
    assert not out.prefill_chunks and {g.request_id for g in out.decode_seq_groups} == {"0", "1"}


def test_running_chunks_go_before_new_prompts():
    s = make_scheduler(budget=8)
    add(s, 0, range(12))
    add(s, 1, range(50, 53))
    out = s.schedule()
    assert out.prefill_chunks == {0: (0, 8)}
    out = s.schedule()
    assert out.prefill_chunks == {0: (8, 12), 1: (0, 3)}


def test_prefix_keys_only_as_far_as_scheduled():
    s = make_scheduler(budget=8, prefix_caching=True)
    add(s, 0, range(20))
    s.schedule()  # tokens 0-7 scheduled: blocks 0 and 1 keyed
    twin = add(s, 1, range(20))
    assert s.block_manager.num_cached_tokens(twin) == 8
    out = s.schedule()  # the first's 8-15 take the budget: the twin waits
    assert out.prefill_chunks == {0: (8, 16)}
    assert s.block_manager.num_cached_tokens(twin) == 16


def test_preempted_prefill_starts_again_and_frees_its_blocks():
    s = make_scheduler(budget=8, num_blocks=6)
    add(s, 0, range(20))  # 5 blocks
    s.schedule()
    group = s.running.pop()  # as _schedule_decodes picks a victim
    s._preempt(group)
    seq = group.seqs[0]
    assert seq.status == SequenceStatus.WAITING and not seq.block_table and not seq.is_prefilling
    assert s.block_manager.get_num_free_blocks() == 6
    out = s.schedule()
    assert out.prefill_chunks == {0: (0, 8)} and seq.is_prefilling


def test_prompt_logprobs_prefill_whole_even_past_the_budget():
    s = make_scheduler(budget=8)
    add(s, 0, range(12), prompt_logprobs=1)
    out = s.schedule()
    assert out.prefill_chunks == {0: (0, 12)}
