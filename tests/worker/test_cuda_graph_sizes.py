"""Steps are padded to a captured size (one list serves decode batches up to max_num_seqs and
steps with prompts up to the piecewise graphs' token limit): every step must have one, the
padding must stay small, and padded_size must find it."""
import pytest

from inference_engine.worker.cuda_graph import capture_sizes, padded_size


def assert_every_size_padded_by_less_than(sizes: list[int], limit: int, slack) -> None:
    assert sizes == sorted(set(sizes)) and sizes[0] == 1 and sizes[-1] == limit
    for n in range(1, limit + 1):
        padded = next(s for s in sizes if s >= n)
        assert padded - n < slack(n), n
        assert padded_size(sizes, n) == padded


@pytest.mark.parametrize("max_num_seqs", [1, 3, 8, 100, 256, 300, 512, 1024])
def test_every_batch_has_a_captured_size_with_little_padding(max_num_seqs):
    # at most ~12 % extra rows
    assert_every_size_padded_by_less_than(capture_sizes(max_num_seqs), max_num_seqs,
                                          lambda n: max(8, n // 8))


@pytest.mark.parametrize("max_tokens", [1, 5, 8, 200, 256, 512, 1000, 1024])
def test_every_step_up_to_the_limit_has_a_token_size_with_little_padding(max_tokens):
    # at most ~6 % extra rows: steps with prompts are mostly compute-bound
    assert_every_size_padded_by_less_than(capture_sizes(max_tokens), max_tokens,
                                          lambda n: max(8, n // 16 + 1))
