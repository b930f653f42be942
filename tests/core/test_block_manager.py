"""Block manager invariants: allocation, growth, copy-on-write forks and frees."""
import pytest

from inference_engine.core.block_manager import AllocStatus, BlockAllocator, BlockSpaceManager
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Sequence, SequenceGroup, SequenceStatus


def make_group(request_id: str, prompt_len: int, seq_id: int = 0) -> SequenceGroup:
    seq = Sequence(seq_id, list(range(prompt_len)))
    return SequenceGroup(request_id, None, seq.prompt_token_ids, SamplingParams(), seq)


def test_allocator_double_free_raises():
    alloc = BlockAllocator(2)
    block = alloc.allocate()
    alloc.free(block)
    with pytest.raises(RuntimeError, match="double free"):
        alloc.free(block)


def test_allocate_and_free_returns_every_block():
    bm = BlockSpaceManager(block_size=4, num_blocks=10, watermark=0.0)
    group = make_group("a", 9)  # 3 blocks
    assert bm.can_allocate(group) == AllocStatus.OK
    bm.allocate(group)
    seq = group.seqs[0]
    assert len(seq.block_table) == 3 and bm.get_num_free_blocks() == 7
    seq.status = SequenceStatus.RUNNING
    for token in range(3):  # tokens 9..11 fit in the third block, 12 needs a fourth
        seq.append_token(token, 0.0)
        assert bm.append_slot(seq) is None
    assert len(seq.block_table) == 3
    seq.append_token(0, 0.0)
    bm.append_slot(seq)
    assert len(seq.block_table) == 4
    bm.free(seq)
    assert bm.get_num_free_blocks() == 10 and seq.block_table == []


def test_can_allocate_never_and_later():
    bm = BlockSpaceManager(block_size=4, num_blocks=4, watermark=0.0)
    assert bm.can_allocate(make_group("big", 17)) == AllocStatus.NEVER
    first = make_group("a", 12, seq_id=0)
    bm.allocate(first)
    assert bm.can_allocate(make_group("b", 8, seq_id=1)) == AllocStatus.LATER


def test_fork_copy_on_write_keeps_forks_independent():
    bm = BlockSpaceManager(block_size=4, num_blocks=10, watermark=0.0)
    group = make_group("a", 6)  # 2 blocks, the second half full
    bm.allocate(group)
    parent = group.seqs[0]
    parent.status = SequenceStatus.RUNNING
    parent.append_token(1, 0.0)
    child = parent.fork(1, 1)
    bm.fork(parent, child)
    assert child.block_table == parent.block_table
    assert bm.get_num_free_blocks() == 8
    parent.append_token(2, 0.0)
    child.append_token(3, 0.0)
    # Both write into the shared second block: the first writer gets a copy.
    copy = bm.append_slot(parent)
    assert copy is not None and copy[0] == child.block_table[-1]
    assert parent.block_table[-1] == copy[1] and parent.block_table[0] == child.block_table[0]
    assert bm.append_slot(child) is None  # now the sole owner of the old block
    assert parent.block_table[-1] != child.block_table[-1]
    bm.free(parent)
    bm.free(child)
    assert bm.get_num_free_blocks() == 10
