"""Incremental detokenizer: streamed text only grows, ends equal to a full decode, and stops on
stop strings at the token that completes them. Run against SmolLM2's byte-level BPE tokenizer
and small sentencepiece-style (byte-fallback, `▁` metaspace) tokenizers built here."""
import json
import os
import random

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from inference_engine.engine.detokenizer import IncrementalDetokenizer, decode_token

FFFD = "\ufffd"
TEXTS = [
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "café naïve résumé — “quotes” and ‘apostrophes’ … done",
    "世界你好，这是一个测试。日本語のテキストも。한국어 텍스트",
    "emoji 🎉🎉 🚀 family 👨‍👩‍👧 flag 🇫🇷 ok",
    "math ∑ x² ≤ ∞, arrows → ⇒, e\u0301 combining\n\ttabs  and  spaces\n",
]
SP_DECODERS = {  # the decoders that Llama-2, Gemma and Metaspace-era conversions produce
    "llama": lambda: [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                      decoders.Strip(" ", 1, 0)],
    "gemma": lambda: [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()],
    "metaspace": lambda: [decoders.ByteFallback(), decoders.Metaspace(prepend_scheme="first")],
}


@pytest.fixture(scope="session")
def smollm2(embedded_path):
    return AutoTokenizer.from_pretrained(os.path.dirname(embedded_path),
                                         gguf_file=os.path.basename(embedded_path))


def build_sp_tokenizer(decoder_name: str) -> PreTrainedTokenizerFast:
    """A BPE with byte fallback trained on ASCII and a few accents: CJK and emoji become
    `<0xNN>` byte tokens, as in Llama-2's tokenizer."""
    corpus = ["Hello world, this is a tiny corpus about stop strings and the end.",
              "The quick brown fox jumps over the lazy dog! café résumé naïve"] * 3
    tk = Tokenizer(models.BPE(byte_fallback=True))
    tk.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=False)
    tk.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=150, show_progress=False,
                                                       special_tokens=["<unk>", "<s>", "</s>"]))
    spec = json.loads(tk.to_str())
    vocab = spec["model"]["vocab"]
    vocab.update({f"<0x{b:02X}>": len(vocab) + b for b in range(256)})
    spec["model"].update(byte_fallback=True, unk_token="<unk>")
    spec["decoder"] = json.loads(decoders.Sequence(SP_DECODERS[decoder_name]()).__getstate__())
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
                                   bos_token="<s>", eos_token="</s>", unk_token="<unk>")


@pytest.fixture(scope="session", params=["smollm2", *SP_DECODERS])
def tok(request):
    if request.param == "smollm2":
        return request.getfixturevalue("smollm2")
    return build_sp_tokenizer(request.param)


def encode(tok, text):
    return tok.encode(text, add_special_tokens=False)


def reference(tok, prompt, output, skip=True):
    """What the output should read: decode(prompt + output) minus decode(prompt)."""
    full = tok.decode(prompt + output, skip_special_tokens=skip)
    head = tok.decode(prompt, skip_special_tokens=skip)
    assert full.startswith(head)
    return full[len(head):]


def stream(tok, prompt, output, **kwargs):
    """Feed `output` one token at a time; return the detokenizer, the text(False) after each
    token and the index of the token whose add_token matched a stop string (or None)."""
    detok = IncrementalDetokenizer(tok, prompt, **kwargs)
    seen, stopped_at = [], None
    for i, token_id in enumerate(output):
        if detok.add_token(token_id) is not None:
            stopped_at = i
            break
        seen.append(detok.text(False))
    return detok, seen, stopped_at


def check_stream(seen, final):
    """The streaming contract: each text extends the previous one and the final text, and
    U+FFFD shows only where the final text has it."""
    for before, after in zip([""] + seen, seen + [final]):
        assert after.startswith(before)
    if FFFD not in final:
        assert all(FFFD not in s for s in seen)


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
