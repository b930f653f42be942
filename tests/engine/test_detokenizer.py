"""Incremental detokenizer: streamed text only grows and ends equal to a full decode; each step
decodes a bounded window. Run against SmolLM2's byte-level BPE tokenizer and small
sentencepiece-style tokenizers (utils/detokenizer_cases.py)."""
import random

import pytest

from inference_engine.engine.detokenizer import decode_token
from utils.detokenizer_cases import (FFFD, SP_DECODERS, TEXTS, build_sp_tokenizer, check_stream,
                                     encode, reference, stream)


@pytest.mark.parametrize("text", TEXTS)
def test_real_text_matches_full_decode(tok, text):
    prompt = encode(tok, "Write something:")
    output = encode(tok, " " + text)
    detok, seen, _ = stream(tok, prompt, output)
    final = detok.text(True)
    assert final == reference(tok, prompt, output)
    assert final.startswith(" ")  # the prompt context keeps the first token's leading space
    check_stream(seen, final)
    assert detok.num_tokens == len(output)


def test_multibyte_characters_are_held_until_complete(tok, request):
    output = encode(tok, "🎉世")
    pieces = [tok.decode(output[:k]) for k in range(1, len(output))]
    assert any(p.endswith(FFFD) for p in pieces)  # the characters really are split over tokens
    detok, seen, _ = stream(tok, [], output[:-1])
    assert all(FFFD not in s for s in seen)
    # Finished mid-character: the broken tail is flushed. (A full byte-fallback decode turns the
    # whole byte run to U+FFFD, 🎉 included, which the stream has already shown.)
    assert detok.text(True).startswith(seen[-1]) and detok.text(True).endswith(FFFD)
    if tok is request.getfixturevalue("smollm2"):
        assert detok.text(True) == pieces[-1]
    detok.add_token(output[-1])
    assert detok.text(False) == tok.decode(output) and detok.text(False).endswith("🎉世")


def test_random_byte_level_tokens_match_full_decode(smollm2):
    rng = random.Random(0)
    # Tokens that are bare bytes of multi-byte characters, to split characters often.
    partial = [i for i in range(256, 2000) if FFFD in smollm2.decode([i])]
    def tokens(n):
        return [rng.choice(partial) if rng.random() < 0.3 else rng.randrange(len(smollm2))
                for _ in range(n)]

    for trial in range(300):
        skip = trial % 2 == 0
        prompt, output = tokens(rng.randrange(0, 8)), tokens(rng.randrange(1, 40))
        detok, seen, _ = stream(smollm2, prompt, output, skip_special_tokens=skip)
        full = smollm2.decode(prompt + output, skip_special_tokens=skip)
        head = smollm2.decode(prompt, skip_special_tokens=skip)
        if full.startswith(head):  # else the output completes the prompt's last character
            assert detok.text(True) == full[len(head):]
        check_stream(seen, detok.text(True))


@pytest.mark.parametrize("decoder", list(SP_DECODERS))
def test_random_sentencepiece_tokens_match_full_decode(decoder):
    tok = build_sp_tokenizer(decoder)
    rng = random.Random(1)
    pieces = [i for t, i in tok.get_vocab().items() if not t.startswith("<")]
    chars = "é世界🎉🚀한ü"
    for _ in range(300):
        output = []
        for _ in range(rng.randrange(1, 30)):
            if rng.random() < 0.3:  # a whole character spelled as byte tokens
                char = rng.choice(chars).encode()
                output += tok.convert_tokens_to_ids([f"<0x{b:02X}>" for b in char])
            else:
                output.append(rng.choice(pieces + [tok.eos_token_id]))
        prompt = [tok.bos_token_id] + [rng.choice(pieces) for _ in range(rng.randrange(0, 6))]
        for skip in (True, False):
            detok, seen, _ = stream(tok, prompt, output, skip_special_tokens=skip)
            assert detok.text(True) == reference(tok, prompt, output, skip)
            check_stream(seen, detok.text(True))


def test_prompt_ending_mid_character_completes_it_in_the_output(smollm2):
    ids = encode(smollm2, "x 🎉 y")
    split = next(k for k in range(1, len(ids)) if smollm2.decode(ids[:k]).endswith(FFFD))
    detok, _, _ = stream(smollm2, ids[:split], ids[split:])
    assert detok.text(True) == "🎉 y"


def test_byte_fallback_run_across_prompt_and_output():
    """The prompt context must not start inside a character: a byte-fallback run cut there
    would decode to U+FFFD throughout, the output's bytes included."""
    tok = build_sp_tokenizer("llama")
    prompt = encode(tok, "Hi 🎉🎉")
    output = encode(tok, "Hi 🎉🎉🎉 end")[len(prompt):]
    assert tok.convert_ids_to_tokens(prompt[-5]).startswith("<0x")  # 5 tokens back: mid-emoji
    detok, seen, _ = stream(tok, prompt, output)
    assert detok.text(True) == reference(tok, prompt, output) == "🎉 end"
    check_stream(seen, detok.text(True))


def test_special_tokens_skipped_or_kept(tok):
    """Skipped specials leave no trace, not even a lost leading space after a run of them."""
    eos = tok.convert_tokens_to_ids(tok.eos_token)
    prompt, output = encode(tok, "Hi"), encode(tok, " Hello") + [eos] * 12 + encode(tok, " there")
    for skip in (True, False):
        detok, _, _ = stream(tok, prompt, output, skip_special_tokens=skip)
        assert detok.text(True) == reference(tok, prompt, output, skip)
        assert detok.num_tokens == len(output)
    assert detok.text(True) == " Hello" + tok.eos_token * 12 + " there"


class CountingTokenizer:
    """Wraps a tokenizer, recording how many ids each decode call gets (not a fast tokenizer,
    so the detokenizer goes through decode())."""
    is_fast = False

    def __init__(self, tok):
        self._tok, self.sizes = tok, []

    def decode(self, ids, **kwargs):
        self.sizes.append(len(ids))
        return self._tok.decode(ids, **kwargs)

    def __getattr__(self, name):
        return getattr(self._tok, name)


def test_each_step_decodes_a_bounded_window(smollm2):
    counting = CountingTokenizer(smollm2)
    prompt, output = encode(smollm2, " ".join(TEXTS) * 3), encode(smollm2, " ".join(TEXTS) * 4)
    detok, seen, _ = stream(counting, prompt, output, stop=["never appears"])
    assert detok.text(True) == smollm2.decode(output)
    assert max(counting.sizes) <= 16 and len(counting.sizes) < 2 * len(output)


def test_invalid_utf8_run_keeps_the_window_bounded(smollm2):
    """A run of bytes that never forms a character ends every decode in U+FFFD; it is emitted
    after a bounded hold rather than re-decoded for ever."""
    byte = next(i for i in range(len(smollm2)) if smollm2.decode([i] * 3) == FFFD * 3)
    counting = CountingTokenizer(smollm2)
    output = encode(smollm2, "a") + [byte] * 100 + encode(smollm2, " b")
    detok, seen, _ = stream(counting, [], output)
    assert max(counting.sizes) <= 32
    assert detok.text(True) == smollm2.decode(output)
    check_stream(seen, detok.text(True))


def test_decode_token(tok):
    """Logprob token texts, laid end to end, read as the streamed text does (leading spaces
    included); specials show as themselves, a lone byte of a character as U+FFFD."""
    prompt, output = encode(tok, "Hi"), encode(tok, " Hello world, the lazy dog!")
    assert "".join(decode_token(tok, t) for t in output) == reference(tok, prompt, output)
    assert decode_token(tok, tok.convert_tokens_to_ids(tok.eos_token)) == tok.eos_token
    split = [t for t in encode(tok, "🎉") if FFFD in tok.decode([t])]
    assert split and all(decode_token(tok, t) == tok.decode([t]) for t in split)
