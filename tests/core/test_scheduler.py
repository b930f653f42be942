"""Scheduler invariants on CPU: admission limits, preemption by recompute, no leaked blocks."""
from inference_engine.config import CacheConfig, SchedulerConfig
from inference_engine.core.scheduler import Scheduler
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus


def make_scheduler(num_blocks: int, block_size: int = 4, max_num_seqs: int = 8,
                   max_tokens: int = 64) -> Scheduler:
    cache = CacheConfig(block_size=block_size, watermark=0.0)
    cache.num_blocks = num_blocks
    return Scheduler(SchedulerConfig(max_num_seqs, max_tokens, max_tokens), cache)


def add(scheduler: Scheduler, request_id: str, prompt_len: int, seq_id: int) -> SequenceGroup:
    seq = Sequence(seq_id, list(range(prompt_len)))
    group = SequenceGroup(request_id, None, seq.prompt_token_ids, SamplingParams(), seq)
    scheduler.add_seq_group(group)
    return group


def fake_step(scheduler: Scheduler, max_len: int):
    """Runs a schedule as the engine would, appending one token per scheduled sequence."""
    out = scheduler.schedule()
    for group in out.scheduled_seq_groups:
        for seq in group.get_seqs(SequenceStatus.RUNNING):
            seq.append_token(7, 0.0)
            if len(seq) >= max_len:
                seq.status = SequenceStatus.FINISHED_LENGTH_CAPPED
    scheduler.free_finished_seq_groups()
    return out


def test_prefills_respect_token_and_seq_limits():
    s = make_scheduler(num_blocks=100, max_num_seqs=2, max_tokens=16)
    for i in range(3):
        add(s, str(i), 6, i)
    out = s.schedule()
    assert len(out.prefill_seq_groups) == 2 and out.num_batched_tokens == 12
    assert not out.decode_seq_groups and len(s.waiting) == 1


def test_decode_runs_every_running_request_then_all_blocks_free():
    s = make_scheduler(num_blocks=100)
    groups = [add(s, str(i), 5, i) for i in range(4)]
    assert len(fake_step(s, 12).prefill_seq_groups) == 4
    out = fake_step(s, 12)
    assert not out.prefill_seq_groups and len(out.decode_seq_groups) == 4
    while s.has_unfinished_seqs():
        fake_step(s, 12)
    assert all(g.is_finished for g in groups)
    assert s.block_manager.get_num_free_blocks() == 100


def test_new_prompts_join_a_step_that_decodes_the_running_ones():
    s = make_scheduler(num_blocks=100, max_num_seqs=4, max_tokens=16)
    first = [add(s, str(i), 6, i) for i in range(2)]
    fake_step(s, 40)
    late = [add(s, str(i), 6, i) for i in range(2, 5)]
    out = fake_step(s, 40)
    # Both running requests decode; the token budget (16 - 2 decodes) admits two 6-token
    # prompts, and max_num_seqs (4) would have stopped a third anyway.
    assert out.decode_seq_groups == first and out.prefill_seq_groups == late[:2]
    assert out.num_decode_tokens == 2 and out.num_prefill_tokens == 12
    assert list(s.waiting) == late[2:]


def test_a_prompt_as_long_as_the_budget_still_joins_a_step_with_decodes():
    s = make_scheduler(num_blocks=100, max_num_seqs=4, max_tokens=16)
    running = add(s, "a", 4, 0)
    fake_step(s, 40)
    long = add(s, "b", 16, 1)
    out = fake_step(s, 40)
    assert out.decode_seq_groups == [running] and out.prefill_seq_groups == [long]


def test_preemption_recomputes_newest_and_frees_blocks():
    s = make_scheduler(num_blocks=6, block_size=4)
    old, new = add(s, "old", 8, 0), add(s, "new", 4, 1)  # 2 + 1 of 6 blocks
    fake_step(s, 40)
    preempted = 0
    for _ in range(200):
        if not s.has_unfinished_seqs():
            break
        preempted += fake_step(s, 20).num_preempted
    assert preempted >= 1 and new.num_preemptions >= 1 and old.num_preemptions == 0
    assert old.is_finished and new.is_finished
    assert s.block_manager.get_num_free_blocks() == 6


def test_abort_frees_blocks_in_any_queue():
    s = make_scheduler(num_blocks=10)
    add(s, "a", 8, 0)
    add(s, "b", 4, 1)
    s.schedule()
    add(s, "c", 4, 2)
    for rid in ("a", "c", "b"):
        assert s.abort_seq_group(rid) is not None
    assert s.abort_seq_group("a") is None
    assert s.block_manager.get_num_free_blocks() == 10 and not s.has_unfinished_seqs()


def launch(scheduler: Scheduler):
    """Schedules a step and puts one token in flight per scheduled sequence, as the engine
    does with async scheduling (Sequence.num_pending)."""
    out = scheduler.schedule()
    for group in out.scheduled_seq_groups:
        for seq in group.get_seqs(SequenceStatus.RUNNING):
            seq.num_pending += 1
    return out


def land(scheduler: Scheduler, out, stopping: tuple[str, ...] = ()) -> None:
    """Reads a launched step's tokens as the engine does: appends one to each sequence still
    alive, finishing it on max_tokens, or on a stop token for the requests in `stopping`."""
    for group in out.scheduled_seq_groups:
        for seq in group.seqs:
            if not seq.num_pending:
                continue
            seq.num_pending -= 1
            if seq.is_finished:
                continue  # the token computed past a stop: dropped
            seq.append_token(7, 0.0)
            if group.request_id in stopping:
                seq.status = SequenceStatus.FINISHED_STOPPED
            elif len(seq.output_token_ids) >= group.sampling_params.max_tokens:
                seq.status = SequenceStatus.FINISHED_LENGTH_CAPPED
    scheduler.free_finished_seq_groups()


def test_a_token_in_flight_takes_a_slot_and_the_last_one_is_not_scheduled_past():
    s = make_scheduler(num_blocks=20, block_size=4)
    group = add(s, "a", 3, 0)
    group.sampling_params = SamplingParams(max_tokens=3)
    seq = group.seqs[0]
    first = launch(s)  # prefill of 3 tokens; its sample is position 3, still in block 0
    assert len(seq.block_table) == 1 and seq.num_pending == 1
    second = launch(s)  # decodes the token in flight (position 3) to sample position 4
    assert second.decode_seq_groups == [group] and seq.num_pending == 2
    land(s, first)
    third = launch(s)  # position 4 is a new block's first slot
    assert len(seq.block_table) == 2 and third.decode_seq_groups == [group]
    land(s, second)
    # The token in flight is the third and last: no step may run past it.
    assert s.schedule().is_empty() and list(s.running) == [group]
    land(s, third)
    assert seq.output_token_ids == [7, 7, 7] and seq.status == SequenceStatus.FINISHED_LENGTH_CAPPED
    assert not s.has_unfinished_seqs() and s.block_manager.get_num_free_blocks() == 20


def test_a_group_preempted_with_a_token_in_flight_keeps_it_and_may_finish_waiting():
    s = make_scheduler(num_blocks=4, block_size=4)
    old, new = add(s, "old", 7, 0), add(s, "new", 2, 1)  # 2 + 1 of 4 blocks
    land(s, launch(s))  # 8 and 3 tokens
    in_flight = launch(s)  # both decode, each sampling a token into its last block
    out = s.schedule()  # old takes the last free block for its token in flight; new must go
    assert out.decode_seq_groups == [old] and out.num_preempted == 1
    assert list(s.waiting) == [new] and s.preempted_in_flight == [new]
    assert new.seqs[0].num_pending == 1 and not new.seqs[0].block_table
    land(s, in_flight, stopping=("new",))  # new's token in flight stops it while it waits
    assert new.seqs[0].output_token_ids == [7, 7] and new.is_finished
    assert not s.waiting and not s.preempted_in_flight and list(s.running) == [old]
    s.abort_seq_group("old")
    assert s.block_manager.get_num_free_blocks() == 4


def test_a_group_preempted_with_a_token_in_flight_is_recomputed_with_it():
    s = make_scheduler(num_blocks=4, block_size=4)
    add(s, "old", 7, 0)
    new = add(s, "new", 2, 1)
    land(s, launch(s))
    in_flight = launch(s)
    s.schedule()  # new is preempted with its token in flight
    land(s, in_flight)
    assert new.seqs[0].output_token_ids == [7, 7] and new.seqs[0].num_pending == 0
    s.abort_seq_group("old")
    out = s.schedule()  # the recomputation prefills the prompt and both tokens
    assert out.prefill_seq_groups == [new] and out.num_prefill_tokens == 4
