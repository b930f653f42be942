"""Paged KV-cache bookkeeping: which physical blocks each sequence owns.

A block holds `block_size` tokens' keys and values. Blocks are reference-counted so that forked
sequences (n > 1, best_of) share their prompt's blocks; a sequence about to write into a shared
block first gets a private copy (copy-on-write), which the scheduler reports as (src, dst).
With prefix caching, prompts that start alike share their full blocks too (prefix_cache.py).
"""
import enum
from collections import deque

from inference_engine.core.prefix_cache import CachedBlocks, block_keys
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus


class AllocStatus(enum.Enum):
    """Whether a group's blocks can be allocated: now, after others finish, or never."""
    OK = enum.auto()
    LATER = enum.auto()
    NEVER = enum.auto()


class BlockAllocator:
    """A free list of physical block numbers with reference counts. Blocks that hold a cached
    prefix and that no sequence holds count as free: an allocation takes them, the oldest first,
    only when no plain free block is left."""

    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self.free_blocks: deque[int] = deque(range(num_blocks))
        self.ref_counts = [0] * num_blocks
        self.cached = CachedBlocks()

    def allocate(self) -> int:
        block = self.free_blocks.popleft() if self.free_blocks else self.cached.evict_oldest()
        if block is None:
            raise RuntimeError("out of KV-cache blocks")
        self.ref_counts[block] = 1
        return block

    def share(self, block: int) -> None:
        """One more holder of an allocated block, or of a cached one that nobody held."""
        if self.ref_counts[block] <= 0:
            if block not in self.cached.unused:
                raise RuntimeError(f"block {block} is not allocated")
            del self.cached.unused[block]
        self.ref_counts[block] += 1

    def free(self, block: int) -> None:
        if self.ref_counts[block] <= 0:
            raise RuntimeError(f"double free of block {block}")
        self.ref_counts[block] -= 1
        if self.ref_counts[block] == 0:
            if block in self.cached.key_of:
                self.cached.unused[block] = None  # the most recently freed: evicted last
            else:
                self.free_blocks.append(block)

    def reset_prefix_cache(self) -> None:
        """Forgets every cached prefix (blocks in use keep their contents)."""
        self.free_blocks.extend(self.cached.clear())

    @property
    def num_free(self) -> int:
        return len(self.free_blocks) + len(self.cached.unused)


def blocks_for(num_tokens: int, block_size: int) -> int:
    return (num_tokens + block_size - 1) // block_size


class BlockSpaceManager:
    """Maps sequences to physical blocks: allocate on prefill, grow on decode, fork, free."""

    def __init__(self, block_size: int, num_blocks: int, watermark: float = 0.01,
                 enable_prefix_caching: bool = False):
        self.block_size = block_size
        self.allocator = BlockAllocator(num_blocks)
        # Keep a few blocks free at admission so running sequences can still grow.
        self.watermark_blocks = int(watermark * num_blocks)
        self.enable_prefix_caching = enable_prefix_caching
        # Prompt tokens looked up in the prefix cache, and those found (counters, for metrics).
        self.prefix_cache_queries = 0
        self.prefix_cache_hits = 0

    def can_allocate(self, group: SequenceGroup, reserved: int = 0) -> AllocStatus:
        """OK if the group's blocks fit while `reserved` blocks stay free for running sequences;
        NEVER if they could not fit even in an empty cache."""
        seqs = group.get_seqs(SequenceStatus.WAITING)
        whole = sum(blocks_for(len(seq), self.block_size) for seq in seqs)
        if whole > self.allocator.num_blocks - self.watermark_blocks:
            return AllocStatus.NEVER
        needed = whole  # less the cached blocks others hold: sharing them takes no free block
        if self._uses_prefix_cache(group):
            needed -= sum(self.allocator.ref_counts[block] > 0
                          for seq in seqs for block in self._cached_blocks(seq))
        if self.allocator.num_free - needed >= self.watermark_blocks + reserved:
            return AllocStatus.OK
        return AllocStatus.LATER

    def _uses_prefix_cache(self, group: SequenceGroup) -> bool:
        # Prompt logprobs need every prompt token's logits, MEAN and CLS embeddings their
        # hidden states, which a cached prefix's tokens never get: such prompts compute them all.
        return self.enable_prefix_caching and not group.reads_every_prompt_token

    def _cached_blocks(self, seq: Sequence) -> list[int]:
        """The cached blocks of the sequence's longest cached prefix. That prefix leaves out the
        last token, whose logits the step must compute."""
        hits = []
        for key in block_keys(seq.token_ids, self.block_size, (len(seq) - 1) // self.block_size,
                              seq.block_keys, seq.cache_salt):
            block = self.allocator.cached.lookup(key)
            if block is None:
                break
            hits.append(block)
        return hits

    def num_cached_tokens(self, group: SequenceGroup) -> int:
        """Tokens of the group's waiting sequences that allocate() would find cached."""
        if not self._uses_prefix_cache(group):
            return 0
        return sum(len(self._cached_blocks(seq)) for seq in
                   group.get_seqs(SequenceStatus.WAITING)) * self.block_size

    def allocate(self, group: SequenceGroup, max_new_tokens: int | None = None) -> None:
        """Gives every waiting sequence of the group the blocks for all its tokens: with prefix
        caching, the cached blocks of its longest cached prefix (seq.num_cached_tokens tokens,
        which no step computes) and new blocks for the rest. The step that admits it computes
        the rest, or only its first `max_new_tokens` (a chunk of the prefill)."""
        use_cache = self._uses_prefix_cache(group)
        for seq in group.get_seqs(SequenceStatus.WAITING):
            assert not seq.block_table, f"sequence {seq.seq_id} already has blocks"
            hits = self._cached_blocks(seq) if use_cache else []
            for block in hits:
                self.allocator.share(block)
            seq.block_table = hits + [self.allocator.allocate() for _ in
                                      range(blocks_for(len(seq), self.block_size) - len(hits))]
            seq.num_cached_tokens = len(hits) * self.block_size
            seq.num_prefill_tokens = len(seq)
            end = len(seq) if max_new_tokens is None else min(
                len(seq), seq.num_cached_tokens + max_new_tokens)
            self.advance(seq, end)
            if use_cache:
                self.prefix_cache_queries += len(seq)
                self.prefix_cache_hits += seq.num_cached_tokens

    def advance(self, seq: Sequence, end: int) -> None:
        """Records that a scheduled step computes the sequence's tokens up to `end`; with prefix
        caching, the full blocks among them become cached prefixes (a prompt behind them in a
        later step, or in the same one, reads what this step writes first)."""
        seq.num_computed_tokens = end
        if self.enable_prefix_caching:
            self._key_blocks(seq, end // self.block_size)

    def _key_blocks(self, seq: Sequence, num_blocks: int) -> None:
        """Makes the sequence's first `num_blocks` blocks (full, computed) cached prefixes."""
        keys = block_keys(seq.token_ids, self.block_size, num_blocks, seq.block_keys,
                          seq.cache_salt)
        for block, key in zip(seq.block_table, keys):
            self.allocator.cached.register(block, key)

    def can_append_slots(self, group: SequenceGroup, num_lookahead: int = 0) -> bool:
        # Worst case: each running sequence needs one new block (a new one or a private copy),
        # and more for `num_lookahead` draft tokens.
        per_seq = 1 + blocks_for(num_lookahead, self.block_size)
        return len(group.get_seqs(SequenceStatus.RUNNING)) * per_seq <= self.allocator.num_free

    def append_slot(self, seq: Sequence, num_lookahead: int = 0) -> tuple[int, int] | None:
        """Makes room for the sequence's last token (one still on the device counts) and
        `num_lookahead` draft tokens after it; returns (src, dst) if a block was copied.

        Blocks that only rejected drafts of an earlier step reached are given back first."""
        table, bs = seq.block_table, self.block_size
        needed = blocks_for(len(seq) + seq.num_pending + num_lookahead, bs)
        while len(table) > needed:
            self.allocator.free(table.pop())
        copy = None
        first = (len(seq) + seq.num_pending - 1) // bs  # the block the step writes first
        if first < len(table) and self.allocator.ref_counts[table[first]] > 1:
            new = self.allocator.allocate()  # shared with a fork: written privately
            copy = table[first], new
            self.allocator.free(table[first])
            table[first] = new
        while len(table) < needed:
            table.append(self.allocator.allocate())
        return copy

    def fork(self, parent: Sequence, child: Sequence) -> None:
        child.block_table = list(parent.block_table)
        for block in child.block_table:
            self.allocator.share(block)

    def free(self, seq: Sequence) -> None:
        if self.enable_prefix_caching and not seq.is_prefilling:  # (advance keyed a prefill's)
            # Its generated tokens' full blocks too, so that a conversation's next turn, or the
            # sequence itself when preempted, finds them; only blocks before its last token: a
            # sampled token's keys and values are computed when it is the next step's input,
            # which the last one never was.
            self._key_blocks(seq, min(len(seq.block_table), (len(seq) - 1) // self.block_size))
        # Last block first: a cached prefix's blocks wait in the unused list deepest-first, so
        # eviction takes a prefix's tail before its head, which more prompts share.
        for block in reversed(seq.block_table):
            self.allocator.free(block)
        seq.block_table = []
        seq.num_prefill_tokens = seq.num_computed_tokens = 0  # a preempted prefill starts anew

    def reset_prefix_cache(self) -> None:
        """Forgets every cached prefix: later prompts compute all their tokens until new ones
        are cached (after a weight update, say)."""
        self.allocator.reset_prefix_cache()

    def get_num_free_blocks(self) -> int:
        return self.allocator.num_free

    @property
    def num_cached_blocks(self) -> int:
        """Blocks that hold a cached prefix (in use or not)."""
        return len(self.allocator.cached.key_of)

    @property
    def usage(self) -> float:
        """Fraction of blocks in use, 0..1."""
        total = self.allocator.num_blocks
        return (total - self.allocator.num_free) / total if total else 0.0
