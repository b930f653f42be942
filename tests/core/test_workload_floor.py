"""benchmarks/workload_floor.py replays the scheduler's policy: step for step, the same
sequences run and the same prompt tokens are admitted as the real Scheduler gives."""
import os
import random
import sys

from inference_engine.config import CacheConfig, SchedulerConfig
from inference_engine.core.scheduler import Scheduler
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
from workload_floor import replay, replay_chunked  # noqa: E402


def scheduler_steps(requests: list[tuple[int, int]], max_seqs: int, budget: int,
                    policy: str = "fcfs") -> list[tuple]:
    cache = CacheConfig(block_size=16, watermark=0.0)
    cache.num_blocks = 10_000  # never short: the floor models no preemption
    scheduler = Scheduler(SchedulerConfig(max_seqs, budget, budget, policy=policy), cache)
    output_len = {}
    for i, (prompt, output) in enumerate(requests):
        seq = Sequence(i, list(range(prompt)))
        scheduler.add_seq_group(SequenceGroup(str(i), None, seq.prompt_token_ids,
                                              SamplingParams(max_tokens=output), seq))
        output_len[i] = output
    steps = []
    while scheduler.has_unfinished_seqs():
        out = scheduler.schedule()
        steps.append((len(scheduler.running), out.num_prefill_tokens))
        for group in out.scheduled_seq_groups:
            for seq in group.get_seqs(SequenceStatus.RUNNING):
                seq.append_token(7, 0.0)
                if len(seq.output_token_ids) >= output_len[seq.seq_id]:
                    seq.status = SequenceStatus.FINISHED_LENGTH_CAPPED
        scheduler.free_finished_seq_groups()
    return steps


def test_replay_matches_the_scheduler_step_for_step():
    rng = random.Random(0)
    requests = [(rng.randint(1, 60), rng.randint(1, 40)) for _ in range(60)]
    replayed = [(seqs, prompt_tokens) for seqs, prompt_tokens, _ in replay(requests, 8, 64)]
    assert replayed == scheduler_steps(requests, 8, 64)


def test_replay_in_longest_output_order_matches_the_lof_scheduler():
    """workload_floor --scheduling-policy lof replays the requests sorted by output length
    (stably), which is the order the scheduler's lof policy admits them in."""
    rng = random.Random(2)
    requests = [(rng.randint(1, 60), rng.randint(1, 40)) for _ in range(60)]
    ordered = sorted(requests, key=lambda r: -r[1])
    replayed = [(seqs, prompt_tokens) for seqs, prompt_tokens, _ in replay(ordered, 8, 64)]
    assert replayed == scheduler_steps(requests, 8, 64, policy="lof")
    assert replayed != scheduler_steps(requests, 8, 64)


def test_chunked_replay_computes_every_prompt_once_within_the_budget():
    """The what-if schedule with chunked prompts: every prompt token is computed exactly once,
    every request samples exactly its output length, and no step holds more tokens than the
    budget (its decode rows included), although prompts longer than the budget run."""
    rng = random.Random(1)
    requests = [(rng.randint(1, 150), rng.randint(1, 40)) for _ in range(50)]
    steps = list(replay_chunked(requests, 8, 64))
    assert sum(prompt for _, prompt, _ in steps) == sum(p for p, _ in requests)
    assert sum(sampled for sampled, _, _ in steps) == sum(o for _, o in requests)
    assert all(prompt + len(contexts) <= 64 for _, prompt, contexts in steps)
    assert max(len(contexts) for _, _, contexts in steps) <= 8
    # A request's decode rows read its prompt and the tokens it generated before them.
    longest_context = max(max(contexts, default=0) for _, _, contexts in steps)
    assert longest_context <= max(p + o - 1 for p, o in requests)


def test_chunked_replay_of_one_long_prompt():
    # 100 prompt tokens in chunks of 64 and 36; the second samples the first token, then two
    # decode steps read 100 and 101 tokens of context.
    assert list(replay_chunked([(100, 3)], 8, 64)) == [(0, 64, []), (1, 36, []), (1, 0, [100]),
                                                        (1, 0, [101])]
