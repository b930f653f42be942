"""Continuous batching: each step decodes one token for every running request and admits waiting
prompts into the same step in the order of the scheduling policy (first come first served by
default; core/scheduling_policy.py), preempting the newest (or least urgent) requests when blocks
run out.

With async scheduling a step is scheduled while the previous one still runs: each sequence it
ran has a token in flight (Sequence.num_pending), which takes a cache slot like any other.
"""
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from inference_engine.config import CacheConfig, LoRAConfig, SchedulerConfig
from inference_engine.core.block_manager import AllocStatus, BlockSpaceManager
from inference_engine.core.scheduling_policy import SchedulingPolicy, WaitingQueue
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus
from inference_engine.spec_decode.config import SpeculativeConfig
from inference_engine.spec_decode.drafter import Drafter

logger = logging.getLogger(__name__)


@dataclass
class SchedulerOutputs:
    """What one step runs, and the cache work the worker must do before it.

    A step may mix both kinds of work: whole prompts to prefill (new requests, or preempted ones
    computed again; with prefix caching, only the tokens after a cached prefix) and one new
    token for every other running sequence. The model runner lays the prefills' tokens out
    first.
    """
    prefill_seq_groups: list[SequenceGroup] = field(default_factory=list)
    # Each prefilled sequence's tokens start..end this step (seq_id -> (start, end)); it samples
    # when end is its length, else a later step computes the next chunk.
    prefill_chunks: dict[int, tuple[int, int]] = field(default_factory=dict)
    decode_seq_groups: list[SequenceGroup] = field(default_factory=list)
    num_prefill_tokens: int = 0
    num_decode_tokens: int = 0
    blocks_to_copy: list[tuple[int, int]] = field(default_factory=list)
    ignored_seq_groups: list[SequenceGroup] = field(default_factory=list)
    num_preempted: int = 0
    # Speculative decoding: decoding sequences' draft tokens (seq_id -> drafts), which the
    # step checks after their last token (num_decode_tokens counts them).
    spec_tokens: dict[int, list[int]] = field(default_factory=dict)

    @property
    def scheduled_seq_groups(self) -> list[SequenceGroup]:
        return self.prefill_seq_groups + self.decode_seq_groups

    @property
    def num_batched_tokens(self) -> int:
        return self.num_prefill_tokens + self.num_decode_tokens

    def is_empty(self) -> bool:
        return not (self.prefill_seq_groups or self.decode_seq_groups)

    def decode_rows(self) -> list[tuple[SequenceGroup, Sequence, list[int]]]:
        """The decoding sequences in the order the model runner lays them out: those with
        drafts first (they run as short prompts over their cache), then the rest."""
        rows = [(g, seq, self.spec_tokens.get(seq.seq_id, [])) for g in self.decode_seq_groups
                for seq in g.get_seqs(SequenceStatus.RUNNING)]
        if not self.spec_tokens:
            return rows
        return [r for r in rows if r[2]] + [r for r in rows if not r[2]]


class Scheduler:
    """Owns the waiting and running queues and the block manager."""

    def __init__(self, scheduler_config: SchedulerConfig, cache_config: CacheConfig,
                 lora_config: LoRAConfig | None = None,
                 speculative_config: SpeculativeConfig | None = None):
        self.config = scheduler_config
        self.drafter = (Drafter(speculative_config, scheduler_config.max_model_len)
                        if speculative_config is not None else None)
        self.max_loras = lora_config.max_loras if lora_config is not None else 0
        self.block_manager = BlockSpaceManager(cache_config.block_size, cache_config.num_blocks,
                                               cache_config.watermark,
                                               cache_config.enable_prefix_caching)
        self.policy = SchedulingPolicy(scheduler_config.policy, scheduler_config.max_model_len)
        self.waiting = WaitingQueue(self.policy)
        self.running: deque[SequenceGroup] = deque()
        self.num_preemptions_total = 0
        # Groups preempted with a token in flight: when it arrives it may finish them while
        # they wait to be computed again.
        self.preempted_in_flight: list[SequenceGroup] = []

    def add_seq_group(self, group: SequenceGroup) -> None:
        self.waiting.add(group)

    def abort_seq_group(self, request_id: str) -> SequenceGroup | None:
        """Finishes the request as aborted and frees its blocks; returns it, or None if unknown."""
        for queue in (self.waiting, self.running):
            for group in queue:
                if group.request_id == request_id:
                    queue.remove(group)
                    for seq in group.unfinished_seqs():
                        seq.status = SequenceStatus.FINISHED_ABORTED
                        self.block_manager.free(seq)
                    return group
        return None

    def has_unfinished_seqs(self) -> bool:
        return bool(self.waiting or self.running)

    def get_num_unfinished_seq_groups(self) -> int:
        return len(self.waiting) + len(self.running)

    def schedule(self) -> SchedulerOutputs:
        """Every running sequence decodes one token; then waiting prompts are admitted into the
        same step while the token budget, max_num_seqs and the free blocks allow.

        Decoding never pauses for a prefill, so the weights read by each step serve both.
        """
        out = SchedulerOutputs()
        self._schedule_decodes(out)
        self._schedule_chunks(out)
        if not out.num_preempted:  # blocks ran short: admitting more would only thrash
            self._schedule_prefills(out)
        now = time.time()
        for group in out.prefill_seq_groups:
            if group.metrics.first_scheduled_time is None:
                group.metrics.first_scheduled_time = now
        return out

    def _schedule_prefills(self, out: SchedulerOutputs) -> None:
        num_seqs = sum(len(g.get_seqs(SequenceStatus.RUNNING)) for g in self.running)
        budget = self.config.max_num_batched_tokens
        # The adapters of the running requests: a step computes at most max_loras of them.
        loras = {g.lora_int_id for g in self.running if g.lora_int_id}
        while self.waiting:
            group = self.waiting[0]
            if group.lora_int_id and group.lora_int_id not in loras:
                if len(loras) >= self.max_loras:
                    break  # it waits, in its place, until a running adapter's requests finish
                loras.add(group.lora_int_id)
            seqs = group.get_seqs(SequenceStatus.WAITING)
            # The tokens the step computes: a cached prefix's are not.
            num_tokens = (sum(len(seq) for seq in seqs)
                          - self.block_manager.num_cached_tokens(group))
            chunk = None  # the whole prefill; with chunked prefill, what the budget has room for
            if self._chunkable(group) and num_tokens > budget - out.num_batched_tokens:
                chunk = budget - out.num_batched_tokens
            # Leave each running sequence room for its next block, or the admission would only
            # force a preemption (and a full recomputation) at the next decode step.
            status = self.block_manager.can_allocate(group, reserved=num_seqs)
            if status == AllocStatus.NEVER:
                logger.warning("request %s needs more KV-cache blocks than exist; ignored",
                               group.request_id)
                self.waiting.popleft()
                for seq in seqs:
                    seq.status = SequenceStatus.FINISHED_IGNORED
                out.ignored_seq_groups.append(group)
                continue
            # The step's decodes share the token budget, but never keep out the first prompt
            # (at most max_num_batched_tokens long): else a long prompt could wait forever.
            over_budget = (out.num_batched_tokens + num_tokens > budget
                           if out.prefill_seq_groups else num_tokens > budget)
            if chunk is not None:
                over_budget = chunk <= 0
            elif self.config.enable_chunked_prefill and not out.prefill_seq_groups:
                # A prefill that cannot be chunked (a recomputed best_of group; prompt logprobs,
                # which add_request keeps within the budget) may overrun it as the step's only
                # prefill: else it could wait forever.
                over_budget = False
            if (status == AllocStatus.LATER or over_budget
                    or num_seqs + len(seqs) > self.config.max_num_seqs):
                break
            self.waiting.popleft()
            self.block_manager.allocate(group, chunk)
            for seq in seqs:
                seq.status = SequenceStatus.RUNNING
                out.prefill_chunks[seq.seq_id] = (seq.num_cached_tokens, seq.num_computed_tokens)
                out.num_prefill_tokens += seq.num_computed_tokens - seq.num_cached_tokens
            self.policy.insert(self.running, group)
            out.prefill_seq_groups.append(group)
            num_seqs += len(seqs)

    def _chunkable(self, group: SequenceGroup) -> bool:
        """Whether the group's prefill may take several steps: with chunked prefill, for one
        sequence (a recomputed best_of group prefills whole) without prompt logprobs."""
        return (self.config.enable_chunked_prefill and not group.wants_prompt_logprobs
                and len(group.get_seqs(SequenceStatus.WAITING)) == 1)

    def _schedule_chunks(self, out: SchedulerOutputs) -> None:
        """The next chunk of every running prefill that chunked prefill split, oldest first,
        while the step's token budget lasts."""
        if not self.config.enable_chunked_prefill:
            return  # every prefill was whole: nothing to go on with (and no loop per step)
        for group in self.running:
            seq = group.seqs[0]
            budget = self.config.max_num_batched_tokens - out.num_batched_tokens
            if not seq.is_prefilling or seq.status != SequenceStatus.RUNNING:
                continue
            if budget <= 0:
                break
            start = seq.num_computed_tokens
            self.block_manager.advance(seq, min(seq.num_prefill_tokens, start + budget))
            out.prefill_seq_groups.append(group)
            out.prefill_chunks[seq.seq_id] = (start, seq.num_computed_tokens)
            out.num_prefill_tokens += seq.num_computed_tokens - start

    def _schedule_decodes(self, out: SchedulerOutputs) -> None:
        drafter = (self.drafter if self.drafter is not None
                   and self.drafter.enabled(len(self.running)) else None)
        running: deque[SequenceGroup] = deque()
        while self.running:
            group = self.running.popleft()
            seqs = group.get_seqs(SequenceStatus.RUNNING)
            if seqs[0].is_prefilling:  # its blocks are all there: _schedule_chunks goes on
                running.append(group)
                continue
            if seqs[0].num_pending and self._last_token_in_flight(group, seqs[0]):
                running.append(group)  # it finishes when that token is read
                continue
            drafts = {}
            if drafter is not None:  # what the step's token budget leaves after the rest
                budget = (self.config.max_num_batched_tokens - out.num_decode_tokens
                          - len(seqs) - len(self.running))
                drafts = drafter.drafts(group, seqs, budget)
                if not self.block_manager.can_append_slots(
                        group, max(map(len, drafts.values()), default=0)):
                    drafts = {}  # no blocks to spare for them: decode without
            while not self.block_manager.can_append_slots(group):
                # Recompute the newest (least urgent) request later rather than stall the others.
                victim = self.running.pop() if self.running else group
                self._preempt(victim)
                out.num_preempted += 1
                if victim is group:
                    break
            else:
                for seq in seqs:
                    copy = self.block_manager.append_slot(seq, len(drafts.get(seq.seq_id, ())))
                    if copy is not None:
                        out.blocks_to_copy.append(copy)
                running.append(group)
                out.decode_seq_groups.append(group)
                out.spec_tokens.update(drafts)
                out.num_decode_tokens += len(seqs) + sum(map(len, drafts.values()))
        self.running = running

    def _last_token_in_flight(self, group: SequenceGroup, seq: Sequence) -> bool:
        """True when the token `seq` has in flight reaches max_tokens or max_model_len: another
        step could produce nothing to keep. (A group's running sequences are equally long.)"""
        max_tokens = group.sampling_params.max_tokens
        return ((max_tokens is not None
                 and len(seq.output_token_ids) + seq.num_pending >= max_tokens)
                or len(seq) + seq.num_pending >= self.config.max_model_len)

    def _preempt(self, group: SequenceGroup) -> None:
        """Preemption by recomputation: drop the group's blocks; it is prefilled again later.

        A token in flight is kept: the engine appends it when read, and the recomputation
        (scheduled only after that) starts from it."""
        for seq in group.get_seqs(SequenceStatus.RUNNING):
            seq.status = SequenceStatus.WAITING
            self.block_manager.free(seq)
        if any(seq.num_pending for seq in group.seqs):
            self.preempted_in_flight.append(group)
        group.num_preemptions += 1
        self.num_preemptions_total += 1
        self.waiting.add_preempted(group)

    def free_finished_seq_groups(self) -> list[SequenceGroup]:
        """Frees the blocks of finished sequences; drops finished groups from the queues.

        Called after every step's tokens are processed: then no group preempted before it has
        a token in flight any more."""
        for group in self.running:
            for seq in group.seqs:
                if seq.is_finished and seq.block_table:
                    self.block_manager.free(seq)
        finished = [g for g in self.running if g.is_finished]
        self.running = deque(g for g in self.running if not g.is_finished)
        if any(g.is_finished for g in self.preempted_in_flight):
            finished += [g for g in self.waiting if g.is_finished]
            self.waiting.keep(lambda g: not g.is_finished)
        self.preempted_in_flight.clear()
        return finished
