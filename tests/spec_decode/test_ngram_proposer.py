"""The n-gram proposer against a plain search over every earlier occurrence, and its config."""
import random

import pytest

from inference_engine.spec_decode.config import SpeculativeConfig
from inference_engine.spec_decode.ngram_proposer import NgramProposer


def plain_search(tokens, k, n_min, n_max):
    """The tokens after the latest earlier occurrence of the longest recurring suffix."""
    for n in range(min(n_max, len(tokens) - 1), n_min - 1, -1):
        suffix = tokens[-n:]
        for start in range(len(tokens) - n - 1, -1, -1):
            if tokens[start:start + n] == suffix:
                return tokens[start + n:start + n + k]
    return []


@pytest.mark.parametrize("n_min,n_max,k", [(1, 4, 3), (2, 3, 5), (3, 3, 1), (1, 1, 4)])
def test_matches_a_plain_search(n_min, n_max, k):
    rng = random.Random(n_min * 100 + n_max * 10 + k)
    proposer = NgramProposer(SpeculativeConfig(num_speculative_tokens=k, prompt_lookup_min=n_min,
                                               prompt_lookup_max=n_max))
    for _ in range(400):
        tokens = [rng.randrange(5) for _ in range(rng.randrange(1, 40))]
        assert proposer.propose(tokens, max_drafts=k) == plain_search(tokens, k, n_min, n_max)


def test_prefers_the_longest_suffix_then_the_latest_occurrence():
    proposer = NgramProposer(SpeculativeConfig(num_speculative_tokens=2, prompt_lookup_max=3))
    #        0  1  2  3  4  5  6  7  8  9
    tokens = [7, 1, 2, 8, 9, 3, 2, 5, 6, 1, 2]
    assert proposer.propose(tokens, 5) == [8, 9]  # "1 2" recurs at 1..2; "2" alone later, at 6
    assert proposer.propose([4, 1, 5, 1, 6, 1], 5) == [6, 1]  # the latest "1" before the end
    assert proposer.propose(tokens, 1) == [8]  # capped by what the sequence may still take
    assert proposer.propose(tokens, 0) == []
    assert proposer.propose([1, 2, 3], 5) == []  # nothing recurs


def test_config_parsing_and_checks():
    parsed = SpeculativeConfig.parse('{"method": "ngram", "num_speculative_tokens": 5}')
    assert parsed.num_speculative_tokens == 5 and parsed.prompt_lookup_max == 4
    assert SpeculativeConfig.parse(None) is None
    assert SpeculativeConfig.parse({"prompt_lookup_min": 2}).prompt_lookup_min == 2
    for bad, match in [('{"method": "eagle"}', "not supported"), ("{nope", "no JSON"),
                       ('{"num_speculative_tokens": 0}', "at least 1"),
                       ('{"prompt_lookup_min": 3, "prompt_lookup_max": 2}', "prompt_lookup"),
                       ('{"draft_model": "x"}', "unknown"), ("[1]", "JSON object"),
                       ('{"disable_by_batch_size": 0}', "disable_by_batch_size")]:
        with pytest.raises(ValueError, match=match):
            SpeculativeConfig.parse(bad)
