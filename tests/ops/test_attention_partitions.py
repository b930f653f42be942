"""The decode op's choice between paged_attention v1 and v2 and of v2's partition size, on the
batches measured on an H100 (RESULTS.md, fourth session: benchmark_decode_attention_mix.py over
ShareGPT context lengths). Pure functions: no kernel runs here."""
import pytest

from inference_engine.ops._compiled import partition_size, use_v1

GRAPH_WIDTH = 8192  # a captured graph's block table spans the model's whole length


@pytest.mark.parametrize("num_seqs, size", [(1, 128), (2, 128), (4, 128), (8, 256), (16, 512),
                                            (64, 512), (256, 512)])
def test_graph_batches_take_v2_with_partitions_that_fill_the_gpu(num_seqs, size):
    """Tail batches of a few 1-2k-token sequences: small partitions (4: 128 tokens, 16.6 us
    against 25.4 with 512; 8: 256 tokens, 25.7 against 32.1)."""
    assert not use_v1(num_seqs, 8, 4, GRAPH_WIDTH)
    assert partition_size(num_seqs, 8, GRAPH_WIDTH) == size


@pytest.mark.parametrize("num_seqs, width, v1", [(64, 1808, False), (128, 1056, False),
                                                 (256, 1200, True), (3, 512, True)])
def test_eager_batches_take_v1_only_when_large(num_seqs, width, v1):
    """v1 gives each sequence one thread block: balanced only over many sequences (64 of mixed
    lengths: v1 86 us, v2 52; 256: v1 154, v2 162) or when one partition covers every context."""
    assert use_v1(num_seqs, 8, 4, width) is v1


def test_cpu_keeps_its_thresholds():
    assert use_v1(64, 8, 4, 1808, "cpu")
    assert partition_size(4, 8, GRAPH_WIDTH, "cpu") == 512
