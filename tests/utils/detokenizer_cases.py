"""Tokenizers and stream helpers for the incremental detokenizer's tests: SmolLM2's byte-level
BPE and small sentencepiece-style (byte-fallback, `▁` metaspace) tokenizers built here."""
import json

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from inference_engine.engine.detokenizer import IncrementalDetokenizer

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
