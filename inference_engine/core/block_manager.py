"""Paged KV-cache bookkeeping: which physical blocks each sequence owns.

A block holds `block_size` tokens' keys and values. Blocks are reference-counted so that forked
sequences (n > 1, best_of) share their prompt's blocks; a sequence about to write into a shared
block first gets a private copy (copy-on-write), which the scheduler reports as (src, dst).
"""
import enum
from collections import deque

from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus


class AllocStatus(enum.Enum):
    """Whether a group's blocks can be allocated: now, after others finish, or never."""
    OK = enum.auto()
    LATER = enum.auto()
    NEVER = enum.auto()


class BlockAllocator:
    """A free list of physical block numbers with reference counts."""

    def __init__(self, num_blocks: int):
        self.num_blocks = num_blocks
        self.free_blocks: deque[int] = deque(range(num_blocks))
        self.ref_counts = [0] * num_blocks

    def allocate(self) -> int:
        if not self.free_blocks:
            raise RuntimeError("out of KV-cache blocks")
        block = self.free_blocks.popleft()
        self.ref_counts[block] = 1
        return block

    def share(self, block: int) -> None:
        if self.ref_counts[block] <= 0:
            raise RuntimeError(f"block {block} is not allocated")
        self.ref_counts[block] += 1

    def free(self, block: int) -> None:
        if self.ref_counts[block] <= 0:
            raise RuntimeError(f"double free of block {block}")
        self.ref_counts[block] -= 1
        if self.ref_counts[block] == 0:
            self.free_blocks.append(block)

    @property
    def num_free(self) -> int:
        return len(self.free_blocks)


def blocks_for(num_tokens: int, block_size: int) -> int:
    return (num_tokens + block_size - 1) // block_size


class BlockSpaceManager:
    """Maps sequences to physical blocks: allocate on prefill, grow on decode, fork, free."""

    def __init__(self, block_size: int, num_blocks: int, watermark: float = 0.01):
        self.block_size = block_size
        self.allocator = BlockAllocator(num_blocks)
        # Keep a few blocks free at admission so running sequences can still grow.
        self.watermark_blocks = int(watermark * num_blocks)

    def _blocks_needed(self, group: SequenceGroup) -> int:
        return sum(blocks_for(len(seq), self.block_size)
                   for seq in group.get_seqs(SequenceStatus.WAITING))

    def can_allocate(self, group: SequenceGroup, reserved: int = 0) -> AllocStatus:
        """OK if the group's blocks fit while `reserved` blocks stay free for running sequences."""
        needed = self._blocks_needed(group)
        if needed > self.allocator.num_blocks - self.watermark_blocks:
            return AllocStatus.NEVER
        if self.allocator.num_free - needed >= self.watermark_blocks + reserved:
            return AllocStatus.OK
        return AllocStatus.LATER

    def allocate(self, group: SequenceGroup) -> None:
        """Gives every waiting sequence of the group the blocks for all its tokens."""
        for seq in group.get_seqs(SequenceStatus.WAITING):
            assert not seq.block_table, f"sequence {seq.seq_id} already has blocks"
            seq.block_table = [self.allocator.allocate()
                               for _ in range(blocks_for(len(seq), self.block_size))]

    def can_append_slots(self, group: SequenceGroup) -> bool:
        # Worst case: each running sequence needs one new block (a new one or a private copy).
        return len(group.get_seqs(SequenceStatus.RUNNING)) <= self.allocator.num_free

    def append_slot(self, seq: Sequence) -> tuple[int, int] | None:
        """Makes room for the sequence's last token (one still on the device counts); returns
        (src, dst) if a block was copied."""
        table = seq.block_table
        if len(table) < blocks_for(len(seq) + seq.num_pending, self.block_size):
            table.append(self.allocator.allocate())
            return None
        last = table[-1]
        if self.allocator.ref_counts[last] == 1:
            return None
        new = self.allocator.allocate()
        self.allocator.free(last)
        table[-1] = new
        return last, new

    def fork(self, parent: Sequence, child: Sequence) -> None:
        child.block_table = list(parent.block_table)
        for block in child.block_table:
            self.allocator.share(block)

    def free(self, seq: Sequence) -> None:
        for block in seq.block_table:
            self.allocator.free(block)
        seq.block_table = []

    def get_num_free_blocks(self) -> int:
        return self.allocator.num_free

    @property
    def usage(self) -> float:
        """Fraction of blocks in use, 0..1."""
        total = self.allocator.num_blocks
        return (total - self.allocator.num_free) / total if total else 0.0
