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
from workload_floor import replay  # noqa: E402


def scheduler_steps(requests: list[tuple[int, int]], max_seqs: int, budget: int) -> list[tuple]:
    cache = CacheConfig(block_size=16, watermark=0.0)
    cache.num_blocks = 10_000  # never short: the floor models no preemption
    scheduler = Scheduler(SchedulerConfig(max_seqs, budget, budget), cache)
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
