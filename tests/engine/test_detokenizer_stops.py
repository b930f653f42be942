"""Incremental detokenizer: stops on stop strings at the token that completes them, holding
back text that may begin one."""
import random

import pytest

from inference_engine.engine.detokenizer import IncrementalDetokenizer
from utils.detokenizer_cases import FFFD, TEXTS, check_stream, encode, reference, stream


@pytest.mark.parametrize("include", [False, True])
def test_stop_string_across_tokens_stops_at_completing_token(tok, include):
    text, stop = " one two three. More text after", "two three."
    output = encode(tok, text)
    # The first token whose decode covers the whole stop string.
    done = next(k for k in range(len(output)) if stop in tok.decode(output[:k + 1]))
    assert stop not in tok.decode(output[done:done + 1])  # it does straddle tokens
    detok, seen, stopped_at = stream(tok, encode(tok, "Count:"), output, stop=[stop],
                                     include_stop_str_in_output=include)
    assert stopped_at == done and detok.stop_reason == stop
    expected = " one " + stop if include else " one "
    assert detok.text(True) == detok.text(False) == expected
    check_stream(seen, expected)


@pytest.mark.parametrize("text, stops, reason, kept", [
    ("alpha beta gamma delta", ["delta", "beta", "gamma"], "beta", "alpha "),
    # Several matches in one token (" Overview"): the one a character-by-character stream would
    # complete first, so the result does not depend on how the text was split into tokens.
    (" Overview", ["view", "erv"], "erv", " Ov"),
    (" Overview", ["Overview", "verv"], "verv", " O"),
    (" Overview", ["ver", "Over"], "Over", " "),  # ending together: the longer one
])
def test_first_completed_stop_string_wins(smollm2, text, stops, reason, kept):
    detok, _, _ = stream(smollm2, [], encode(smollm2, text), stop=stops)
    assert detok.stop_reason == reason and detok.text(True) == kept


@pytest.mark.parametrize("include", [False, True])
def test_random_stop_strings_match_reference(tok, include):
    """Stops at the first token after which a stop string shows in the full decode, and
    truncates at the match that completes first."""
    rng = random.Random(2)
    prompt = encode(tok, "Go:")
    for text in TEXTS:
        output = encode(tok, " " + text)
        full = reference(tok, prompt, output)
        for _ in range(15):
            starts = [rng.randrange(len(full)) for _ in range(rng.randint(1, 3))]
            stops = [full[i:i + rng.randint(1, 6)] for i in starts]
            end = next(e for e in range(len(full) + 1) if any(full[:e].endswith(s) for s in stops))
            first = max((s for s in stops if full[:end].endswith(s)), key=len)
            expected = full[:end] if include else full[:end - len(first)]
            index = next(k for k in range(len(output))
                         if any(s in reference(tok, prompt, output[:k + 1]) for s in stops))
            detok, seen, stopped_at = stream(tok, prompt, output, stop=stops,
                                             include_stop_str_in_output=include)
            assert (stopped_at, detok.stop_reason, detok.text(True)) == (index, first, expected)
            check_stream(seen, expected)


def test_stop_prefix_is_held_back_then_released(smollm2):
    detok = IncrementalDetokenizer(smollm2, [], stop=["STOP"])
    for t in encode(smollm2, "go ST"):
        assert detok.add_token(t) is None
    assert detok.text(False) == "go " and detok.text(True) == "go ST"
    for t in encode(smollm2, "AY"):
        detok.add_token(t)
    assert detok.text(False) == "go STAY"


def test_check_stop_false_defers_matching(smollm2):
    detok = IncrementalDetokenizer(smollm2, [], stop=["end"])
    first, rest = encode(smollm2, "the end"), encode(smollm2, " and en")
    assert [detok.add_token(t, check_stop=False) for t in first] == [None] * len(first)
    assert [detok.add_token(t) for t in rest] == [None] * len(rest)
    assert detok.add_token(encode(smollm2, "d")[0]) == "end"  # straddles the check_stop switch
    assert detok.text(True) == "the end and "


def test_stop_string_on_a_split_character(smollm2):
    output = encode(smollm2, "party 🎉 time")
    detok, _, stopped_at = stream(smollm2, [], output, stop=["🎉"])
    assert detok.stop_reason == "🎉" and detok.text(True) == "party "
    assert smollm2.decode(output[:stopped_at]).endswith(FFFD)  # caught as the emoji completes
    assert "🎉" in smollm2.decode(output[:stopped_at + 1])


def test_stop_on_special_token_text(smollm2):
    output = encode(smollm2, "Hi") + [2] + encode(smollm2, " more")
    detok, _, stopped_at = stream(smollm2, [], output, skip_special_tokens=False,
                                  stop=["<|im_end|>"])
    assert stopped_at == len(encode(smollm2, "Hi")) and detok.text(True) == "Hi"


def test_misuse_raises(smollm2):
    with pytest.raises(ValueError):
        IncrementalDetokenizer(smollm2, [], stop=[""])
    detok, _, _ = stream(smollm2, [], encode(smollm2, "a b"), stop=["b"])
    with pytest.raises(RuntimeError):
        detok.add_token(0)
