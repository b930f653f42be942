"""Prefix caching in the block manager and the scheduler: what is found, what is computed, what is
evicted, and that every block comes back."""
import pytest

from inference_engine.config import CacheConfig, SchedulerConfig
from inference_engine.core.block_manager import AllocStatus, BlockSpaceManager
from inference_engine.core.prefix_cache import block_keys
from inference_engine.core.scheduler import Scheduler
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus

BS = 4


def make_group(tokens: list[int], seq_id: int = 0, **params) -> SequenceGroup:
    seq = Sequence(seq_id, list(tokens))
    return SequenceGroup(str(seq_id), None, seq.prompt_token_ids, SamplingParams(**params), seq)


def admit(bm: BlockSpaceManager, tokens: list[int], seq_id: int, **params) -> Sequence:
    group = make_group(tokens, seq_id, **params)
    bm.allocate(group)
    seq = group.seqs[0]
    seq.status = SequenceStatus.RUNNING
    return seq


def test_keys_chain_the_whole_prefix():
    a = block_keys([1, 2, 3, 4, 5, 6, 7, 8], BS, 2)
    b = block_keys([9, 2, 3, 4, 5, 6, 7, 8], BS, 2)
    assert len(a) == 2 and a == block_keys([1, 2, 3, 4, 5, 6, 7, 8, 9], BS, 2)
    assert a[1] != b[1]  # the same second block behind another first block is another prefix
    assert block_keys([1, 2, 3], BS, 0) == []


@pytest.mark.parametrize("prompt_len, cached", [(10, 8), (8, 4), (4, 0), (3, 0), (13, 12)])
def test_same_prompt_finds_its_full_blocks_but_computes_the_last_token(prompt_len, cached):
    bm = BlockSpaceManager(BS, num_blocks=16, watermark=0.0, enable_prefix_caching=True)
    first = admit(bm, range(100, 100 + prompt_len), 0)
    assert first.num_cached_tokens == 0
    again = make_group(range(100, 100 + prompt_len), 1)
    assert bm.num_cached_tokens(again) == cached
    bm.allocate(again)
    second = again.seqs[0]
    assert second.num_cached_tokens == cached
    assert second.block_table[:cached // BS] == first.block_table[:cached // BS]
    assert not set(second.block_table[cached // BS:]) & set(first.block_table)
    assert (bm.prefix_cache_queries, bm.prefix_cache_hits) == (2 * prompt_len, cached)


def test_prompts_share_only_their_common_full_blocks():
    bm = BlockSpaceManager(BS, num_blocks=16, watermark=0.0, enable_prefix_caching=True)
    first = admit(bm, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0)
    other = admit(bm, [1, 2, 3, 4, 5, 6, 0, 8, 9, 10], 1)  # differs in the second block
    assert other.num_cached_tokens == 4 and other.block_table[0] == first.block_table[0]
    assert other.block_table[1] != first.block_table[1]


def test_freed_prefix_is_found_again_and_every_block_returns():
    bm = BlockSpaceManager(BS, num_blocks=8, watermark=0.0, enable_prefix_caching=True)
    first = admit(bm, range(10), 0)
    blocks = list(first.block_table)
    bm.free(first)
    assert bm.get_num_free_blocks() == 8  # cached blocks nobody holds count as free
    again = admit(bm, range(10), 1)
    assert again.num_cached_tokens == 8 and again.block_table[:2] == blocks[:2]
    assert bm.get_num_free_blocks() == 5
    bm.free(again)
    assert bm.get_num_free_blocks() == 8


def test_eviction_takes_plain_blocks_first_then_the_oldest_tail():
    bm = BlockSpaceManager(BS, num_blocks=4, watermark=0.0, enable_prefix_caching=True)
    first = admit(bm, range(9), 0)  # blocks: two full (cached), one with the ninth token
    head, tail, last = first.block_table
    bm.free(first)
    other = admit(bm, range(50, 55), 1)  # two blocks: the two plain ones, then the oldest
    unused_before = ({0, 1, 2, 3} - {head, tail, last}).pop()
    assert set(other.block_table) == {unused_before, last}
    third = admit(bm, [60], 2)  # no plain block left: evicts the tail (freed first)
    assert third.block_table == [tail]
    again = make_group(range(9), 3)
    assert bm.num_cached_tokens(again) == 4  # the head is still cached, the tail is not


def test_off_or_prompt_logprobs_compute_everything():
    off = BlockSpaceManager(BS, num_blocks=16, watermark=0.0)
    admit(off, range(10), 0)
    assert admit(off, range(10), 1).num_cached_tokens == 0
    on = BlockSpaceManager(BS, num_blocks=16, watermark=0.0, enable_prefix_caching=True)
    admit(on, range(10), 0)
    assert admit(on, range(10), 1, prompt_logprobs=1).num_cached_tokens == 0
    assert on.prefix_cache_queries == 10  # the prompt-logprobs request never looked


def test_reset_forgets_prefixes_and_keeps_blocks():
    bm = BlockSpaceManager(BS, num_blocks=8, watermark=0.0, enable_prefix_caching=True)
    held = admit(bm, range(10), 0)
    bm.free(admit(bm, range(20, 30), 1))
    bm.reset_prefix_cache()
    assert bm.get_num_free_blocks() == 5
    assert bm.num_cached_tokens(make_group(range(10), 2)) == 0
    assert bm.num_cached_tokens(make_group(range(20, 30), 3)) == 0
    bm.free(held)
    assert bm.get_num_free_blocks() == 8


def test_decode_after_a_cached_prompt_writes_only_private_blocks():
    bm = BlockSpaceManager(BS, num_blocks=16, watermark=0.0, enable_prefix_caching=True)
    first = admit(bm, range(8), 0)  # both blocks full: the second is cached too
    second = admit(bm, range(8), 1)
    assert second.block_table[0] == first.block_table[0]
    for seq in (first, second):
        seq.append_token(1, 0.0)
        assert bm.append_slot(seq) is None  # the ninth token: a new block, no copy
    assert first.block_table[2] != second.block_table[2]


def test_scheduler_budget_counts_only_the_tokens_computed():
    cache = CacheConfig(block_size=BS, watermark=0.0, enable_prefix_caching=True)
    cache.num_blocks = 32
    s = Scheduler(SchedulerConfig(max_num_seqs=8, max_num_batched_tokens=24, max_model_len=24),
                  cache)
    prompt = list(range(20))
    s.add_seq_group(make_group(prompt, 0))
    out = s.schedule()
    assert out.num_prefill_tokens == 20
    for seq in out.prefill_seq_groups[0].seqs:
        seq.append_token(1, 0.0)
    s.add_seq_group(make_group(prompt, 1))  # 16 of its 20 tokens are cached: 4 fit the budget
    s.add_seq_group(make_group(prompt, 2))
    out = s.schedule()
    assert len(out.prefill_seq_groups) == 2 and out.num_prefill_tokens == 8
    assert out.num_decode_tokens == 1 and out.num_batched_tokens == 9
    assert [g.seqs[0].num_cached_tokens for g in out.prefill_seq_groups] == [16, 16]


def test_generated_blocks_are_cached_when_the_sequence_is_freed():
    bm = BlockSpaceManager(BS, num_blocks=16, watermark=0.0, enable_prefix_caching=True)
    seq = admit(bm, range(10), 0)
    for token in range(100, 110):  # 20 tokens: the 20th (last sampled) was never an input
        seq.append_token(token, 0.0)
        bm.append_slot(seq)
    table = list(seq.block_table)
    bm.free(seq)
    turn = list(range(10)) + list(range(100, 110)) + [7, 8, 9]  # the next turn of the chat
    follow_up = admit(bm, turn, 1)
    assert follow_up.num_cached_tokens == 16  # blocks of tokens 0-15; 16-19 held the last one
    assert follow_up.block_table[:4] == table[:4]


def test_admission_counts_only_the_blocks_it_takes():
    bm = BlockSpaceManager(BS, num_blocks=6, watermark=0.0, enable_prefix_caching=True)
    admit(bm, range(17), 0)  # 5 blocks, 4 of them full and cached
    again = make_group(range(17), 1)
    assert bm.can_allocate(again) == AllocStatus.OK  # 4 held blocks shared, 1 new
    assert bm.can_allocate(make_group(range(50, 67), 2)) == AllocStatus.LATER
    assert bm.can_allocate(make_group(range(50, 75), 3)) == AllocStatus.NEVER  # 7 > 6


def test_keys_are_computed_once_per_block():
    seq = Sequence(0, list(range(10)))
    first = block_keys(seq.token_ids, BS, 2, seq.block_keys)
    seq.append_token(5, 0.0), seq.append_token(6, 0.0)
    assert block_keys(seq.token_ids, BS, 3, seq.block_keys) == block_keys(seq.token_ids, BS, 3)
    assert seq.block_keys[:2] == first and len(seq.block_keys) == 3
    assert block_keys(seq.token_ids, BS, 1, seq.block_keys) == first[:1]
