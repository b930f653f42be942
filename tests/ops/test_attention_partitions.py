"""The decode op's choice between paged_attention v1 and v2 and of v2's partition size, on the
batches measured on an H100 (benchmarks/results_archive/2026-11.md, fourth session: benchmark_decode_attention_mix.py over
ShareGPT context lengths). Pure functions: no kernel runs here."""
import pytest
import torch

from inference_engine.envs import PAGED_ATTENTION_KERNEL
from inference_engine.ops._compiled import decode_kernel, partition_size, use_v1

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


@pytest.mark.parametrize("num_seqs, width, v1", [(12, GRAPH_WIDTH, False), (13, 1630, False),
                                                 (14, GRAPH_WIDTH, True), (65, 1724, True),
                                                 (192, GRAPH_WIDTH, True), (192, 1422, True)])
def test_tensor_core_kernel_takes_v1_from_14_sequences(num_seqs, width, v1):
    """The tensor-core kernel keeps no logits in shared memory, so v1 takes a graph's whole-model
    table too; since it stages K and V through shared memory, v1 is as fast as v2 or faster from
    14 sequences (H100, 2026-12-05: 14 sequences v1 27.9 us, v2 29.7; 65: v1 61.6, v2 65.7)."""
    assert use_v1(num_seqs, 8, 4, width, "cuda_mma") is v1


@pytest.mark.parametrize("num_seqs, v1", [(16, False), (23, False), (24, True), (192, True)])
def test_tensor_core_kernel_over_fp8_takes_v1_from_24_sequences(num_seqs, v1):
    """Over an FP8 cache a block streams half the bytes, so v2's partitions pay longer: at 16
    sequences v2 took 16.4 us against v1's 18.1, at 24 they were even (H100, fifteenth session)."""
    assert use_v1(num_seqs, 8, 4, GRAPH_WIDTH, "cuda_mma_fp8") is v1


def test_decode_kernel_on_the_cpu():
    query = torch.empty(2, 8, 128, dtype=torch.bfloat16)
    assert decode_kernel(query) == "cpu"
    assert decode_kernel(query, torch.empty(4, 16, 8, 128, dtype=torch.float8_e4m3fn)) == "cpu_fp8"


@pytest.mark.gpu
def test_decode_kernel_names_the_kernel_the_op_runs(monkeypatch):
    """As csrc/gpu/paged_attention_kernels.cu picks: the tensor cores for 16-bit queries of head
    size 64 or 128 on sm_80+ CUDA, unless the environment asks for the CUDA-core kernel."""
    def kernel(dtype, head_size):
        return decode_kernel(torch.empty(2, 8, head_size, dtype=dtype, device="cuda"))
    tensor_cores = torch.version.hip is None and torch.cuda.get_device_capability() >= (8, 0)
    mma = "cuda_mma" if tensor_cores else "cuda"
    assert kernel(torch.bfloat16, 128) == kernel(torch.float16, 64) == mma
    assert kernel(torch.float32, 128) == kernel(torch.bfloat16, 80) == "cuda"
    monkeypatch.setenv(PAGED_ATTENTION_KERNEL, "simt")
    assert kernel(torch.bfloat16, 128) == "cuda"


def test_cpu_keeps_its_thresholds():
    assert use_v1(64, 8, 4, 1808, "cpu")
    assert partition_size(4, 8, GRAPH_WIDTH, "cpu") == 512
