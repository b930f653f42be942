"""Decode batches are padded to a captured size: every batch up to max_num_seqs must have one,
and the padding must stay small."""
import pytest

from inference_engine.worker.cuda_graph import capture_sizes
from inference_engine.worker.piecewise_cuda_graph import token_capture_sizes


@pytest.mark.parametrize("max_num_seqs", [1, 3, 8, 100, 256, 300, 512, 1024])
def test_every_batch_has_a_captured_size_with_little_padding(max_num_seqs):
    sizes = capture_sizes(max_num_seqs)
    assert sizes == sorted(set(sizes)) and sizes[0] == 1 and sizes[-1] == max_num_seqs
    for batch in range(1, max_num_seqs + 1):
        padded = next(s for s in sizes if s >= batch)
        assert padded - batch < max(8, batch // 8)  # at most ~12 % extra rows


@pytest.mark.parametrize("max_tokens", [1, 5, 8, 200, 256, 512, 1000, 1024])
def test_every_step_up_to_the_limit_has_a_token_size_with_little_padding(max_tokens):
    sizes = token_capture_sizes(max_tokens)
    assert sizes == sorted(set(sizes)) and sizes[0] == 1 and sizes[-1] == max_tokens
    for tokens in range(1, max_tokens + 1):
        padded = next(s for s in sizes if s >= tokens)
        assert padded - tokens < max(8, tokens // 16 + 1)  # at most ~6 % extra compute
