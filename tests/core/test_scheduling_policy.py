"""Scheduling policies on CPU: the order of admission, and whom a block shortage preempts."""
import pytest

from inference_engine.config import CacheConfig, SchedulerConfig
from inference_engine.core.scheduler import Scheduler
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus


def make_scheduler(policy: str, num_blocks: int = 100, max_num_seqs: int = 8,
                   budget: int = 64) -> Scheduler:
    cache = CacheConfig(block_size=4, watermark=0.0)
    cache.num_blocks = num_blocks
    return Scheduler(SchedulerConfig(max_num_seqs, budget, budget, policy=policy), cache)


def add(scheduler: Scheduler, request_id: str, prompt_len: int = 4, max_tokens: int | None = 16,
        priority: int = 0, arrival: float | None = None) -> SequenceGroup:
    seq = Sequence(int(request_id), list(range(prompt_len)))
    group = SequenceGroup(request_id, None, seq.prompt_token_ids,
                          SamplingParams(max_tokens=max_tokens), seq,
                          arrival_time=arrival or 1000.0 + int(request_id), priority=priority)
    scheduler.add_seq_group(group)
    return group


def admitted(scheduler: Scheduler) -> list[str]:
    return [g.request_id for g in scheduler.schedule().prefill_seq_groups]


def test_fcfs_admits_in_arrival_order():
    s = make_scheduler("fcfs", max_num_seqs=3)
    for i, max_tokens in enumerate([5, 50, 20, 40]):
        add(s, str(i), max_tokens=max_tokens)
    assert admitted(s) == ["0", "1", "2"]


def test_lof_admits_the_longest_max_tokens_first_ties_by_arrival():
    s = make_scheduler("lof", max_num_seqs=3)
    for i, max_tokens in enumerate([5, 50, 20, 50, 40]):
        add(s, str(i), max_tokens=max_tokens)
    assert admitted(s) == ["1", "3", "4"]
    assert [g.request_id for g in s.waiting] == ["2", "0"]


def test_lof_counts_a_missing_max_tokens_as_the_rest_of_the_context():
    s = make_scheduler("lof", max_num_seqs=1, budget=64)
    add(s, "0", max_tokens=50)
    add(s, "1", prompt_len=4, max_tokens=None)  # up to 60 tokens: the longer one
    assert admitted(s) == ["1"]


def test_priority_admits_lower_values_first_then_by_arrival():
    s = make_scheduler("priority", max_num_seqs=3)
    for i, priority in enumerate([3, -1, 3, 0, 7]):
        add(s, str(i), priority=priority)
    assert admitted(s) == ["1", "3", "0"]
    assert [g.request_id for g in s.waiting] == ["2", "4"]


def fill_blocks(policy: str, priorities: list[int]) -> tuple[Scheduler, list[SequenceGroup]]:
    """Running groups of one full 4-token block each in a cache with a block short: the next
    decode step must preempt one. (Admission leaves each running group room for its next block:
    n groups are admitted into 2n - 1 blocks.)"""
    s = make_scheduler(policy, num_blocks=2 * len(priorities) - 1)
    groups = [add(s, str(i), prompt_len=4, priority=p) for i, p in enumerate(priorities)]
    assert len(s.schedule().prefill_seq_groups) == len(groups)
    for group in groups:  # each sampled its first token: the next one needs a new block
        group.seqs[0].append_token(7, 0.0)
    return s, groups


@pytest.mark.parametrize("policy,priorities,victims", [
    ("fcfs", [0, 0, 0], ["2"]),  # the newest
    ("priority", [0, 5, 2], ["1"]),  # the least urgent, though not the newest
    ("priority", [9, 0, 0], ["0"]),  # the first in the queue may be the one to go
])
def test_a_block_shortage_preempts_by_the_policy(policy, priorities, victims):
    s, groups = fill_blocks(policy, priorities)
    out = s.schedule()
    preempted = [g.request_id for g in groups if g.seqs[0].status == SequenceStatus.WAITING]
    assert out.num_preempted == len(victims) and preempted == victims
    assert [g.request_id for g in s.waiting] == victims
    assert sorted(g.request_id for g in out.decode_seq_groups) == sorted(
        g.request_id for g in groups if g.request_id not in victims)


def test_a_preempted_request_waits_in_its_policy_place():
    s, groups = fill_blocks("priority", [0, 5, 2])
    late = add(s, "7", priority=5, arrival=5000.0)  # same priority as the victim, later
    early = add(s, "8", priority=1, arrival=5000.0)
    s.schedule()  # preempts "1"; the others hold every block, so no admission
    assert [g.request_id for g in s.waiting] == ["8", "1", "7"]
    assert late in s.waiting and early in s.waiting


def test_lof_preempts_the_shortest_request():
    s = make_scheduler("lof", num_blocks=5)
    groups = [add(s, str(i), prompt_len=4, max_tokens=m) for i, m in enumerate([30, 10, 20])]
    s.schedule()
    for group in groups:
        group.seqs[0].append_token(7, 0.0)
    s.schedule()
    assert [g.request_id for g in s.waiting] == ["1"]


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="scheduling policy must be one of fcfs, priority, lof"):
        SchedulerConfig(8, 64, 64, policy="sjf")
