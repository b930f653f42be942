"""Incremental detokenization and stop-string matching for one sequence.

The server streams text deltas, so the text a client sees may only grow. Two things could make
a naive decode shrink or change: a multi-byte character split across tokens (it decodes to
U+FFFD until its last byte arrives), and a stop string that straddles tokens (its first
characters must not be sent until we know whether the rest follows). `IncrementalDetokenizer`
holds both back, and decodes only a small window of recent tokens per step instead of the whole
output.
"""
import os
from collections.abc import Sequence

REPLACEMENT_CHAR = "\ufffd"

# Prompt tokens decoded ahead of the output, so that the first output token is not at the start
# of a decode (sentencepiece decoders strip the leading space of the first token).
_PROMPT_CONTEXT_TOKENS = 5
# A UTF-8 character has at most 3 continuation bytes: stepping this many tokens back is enough to
# move a context window that starts inside a character to that character's first byte.
_MAX_CONTINUATION_BYTES = 3
# Once the decode window is this long it is moved up to the last stable group of tokens; below
# it, each step costs one decode of a handful of tokens.
_WINDOW_TOKENS = 8
# Held tokens after which the window's trailing U+FFFD are emitted as they are. Only output that
# is not valid UTF-8 gets here (a real character completes within 4 bytes); the cap keeps
# a step O(1) for such garbage instead of re-decoding an ever-growing run.
_MAX_HELD_TOKENS = 16


def _special_token_ids(tokenizer) -> set[int]:
    """Ids that `decode(..., skip_special_tokens=True)` drops: the named special tokens and every
    added token flagged special (e.g. SmolLM2's `<repo_name>`, which `all_special_ids` omits)."""
    ids = set(getattr(tokenizer, "all_special_ids", ()))
    for token_id, token in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(token, "special", False):
            ids.add(token_id)
    return ids


def _decoder(tokenizer, skip_special_tokens: bool, spaces_between_special_tokens: bool):
    """A function decoding a list of ids to text, without the tokenizer's clean-up of spaces
    (it rewrites text across token boundaries, e.g. " ." -> ".", so it is not incremental)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and getattr(tokenizer, "is_fast", False):
        # What a fast tokenizer's decode() does minus clean-up, without its Python overhead
        # (a few microseconds a call, paid on every token of every sequence).
        return lambda ids: backend.decode(ids, skip_special_tokens=skip_special_tokens)
    return lambda ids: tokenizer.decode(
        ids, skip_special_tokens=skip_special_tokens,
        spaces_between_special_tokens=spaces_between_special_tokens,
        clean_up_tokenization_spaces=False)


def decode_token(tokenizer, token_id: int) -> str:
    """The text of one token as the OpenAI API shows it in logprobs, leading space included.

    Decoding the token twice and keeping the second copy keeps the leading space that
    sentencepiece decoders strip from the first token of a string. A token holding part of a
    multi-byte character comes out as U+FFFD; an id past the vocabulary as "".
    """
    decode = _decoder(tokenizer, skip_special_tokens=False, spaces_between_special_tokens=True)
    once = decode([token_id])
    if REPLACEMENT_CHAR in once:
        return once  # partial bytes: doubling them would pair them up into other characters
    twice = decode([token_id, token_id])
    return twice[len(once):] if twice.startswith(once) else once


class IncrementalDetokenizer:
    """Turns one sequence's generated tokens into text, one token at a time.

    `_ids` is a window of recent tokens that begins where the text was stable (no trailing
    U+FFFD), so decoding it alone gives the same characters that decoding the whole sequence
    would; the first `_prefix_len` characters of its decode have been emitted already. The
    first window is a few prompt tokens, so the output text is the decode of prompt + output
    minus the decode of the prompt (the first output token keeps its leading space).
    """

    def __init__(self, tokenizer, prompt_token_ids: list[int], *, skip_special_tokens: bool = True,
                 spaces_between_special_tokens: bool = True, stop: Sequence[str] = (),
                 include_stop_str_in_output: bool = False):
        if isinstance(stop, str):
            stop = (stop,)
        if any(not s for s in stop):
            raise ValueError("stop strings must be non-empty")
        self.stop = tuple(stop)
        # Last character of each proper prefix of a stop string -> (prefix length, stop string),
        # longest first: text() tests only the prefixes that end in the output's last character.
        self._prefix_ends: dict[str, list[tuple[int, str]]] = {}
        for s in self.stop:
            for k in range(1, len(s)):
                self._prefix_ends.setdefault(s[k - 1], []).append((k, s))
        for candidates in self._prefix_ends.values():
            candidates.sort(reverse=True)
        self.include_stop_str_in_output = include_stop_str_in_output
        self.stop_reason: str | None = None  # the stop string matched, once one has
        self._decode = _decoder(tokenizer, skip_special_tokens, spaces_between_special_tokens)
        # Skipped specials are left out of the window altogether, so that a window never consists
        # of specials only (its next real token would then lose its leading space).
        self._skip_ids = _special_token_ids(tokenizer) if skip_special_tokens else frozenset()
        self._num_tokens = 0
        self._output = ""   # stable text, truncated at the stop string once one matched
        self._pending = ""  # text after `_output` still ending in U+FFFD (an unfinished character)
        self._ids, context_text = self._prompt_context(prompt_token_ids)
        self._prefix_len = len(context_text)
        # A prompt that ends inside a character (possible with token-id prompts) until the output
        # shows whether it completes that character; see add_token.
        self._open_context = context_text if context_text.endswith(REPLACEMENT_CHAR) else None
        self._read = len(self._ids)  # where in `_ids` the text was last stable

    def _prompt_context(self, prompt_token_ids: list[int]) -> tuple[list[int], str]:
        """The last few prompt tokens and their text."""
        prompt = [t for t in prompt_token_ids if t not in self._skip_ids]
        start = max(0, len(prompt) - _PROMPT_CONTEXT_TOKENS)
        text = self._decode(prompt[start:])
        # A context starting inside a character: step back to its first byte, since a
        # sentencepiece byte-fallback run that starts mid-character decodes to U+FFFD throughout.
        for _ in range(_MAX_CONTINUATION_BYTES):
            if start == 0 or not text.startswith(REPLACEMENT_CHAR):
                break
            start -= 1
            text = self._decode(prompt[start:])
        return prompt[start:], text

    @property
    def num_tokens(self) -> int:
        """Generated tokens added so far, skipped special tokens included."""
        return self._num_tokens

    def add_token(self, token_id: int, check_stop: bool = True) -> str | None:
        """Append one generated token. Returns the stop string matched (output then truncated:
        before the stop string, or through it when include_stop_str_in_output), else None.

        `check_stop=False` (e.g. before `min_tokens`) adds the text without looking for stop
        strings; a stop string ending in a later token is still found even if it began here.
        """
        if self.stop_reason is not None:
            raise RuntimeError("add_token() after the sequence matched a stop string")
        self._num_tokens += 1
        if token_id in self._skip_ids:
            return None
        self._ids.append(token_id)
        text = self._decode(self._ids)
        if self._open_context is not None:
            # The output begins where its text departs from the prompt's: an output token that
            # completes the prompt's last character emits that whole character.
            self._prefix_len = len(os.path.commonprefix([self._open_context, text]))
        held = len(self._ids) - self._read
        if text.endswith(REPLACEMENT_CHAR) and held < _MAX_HELD_TOKENS:
            # An unfinished character: what precedes the trailing U+FFFD run is final, so it is
            # emitted (a stop string may end there), but the window stays put until the
            # character completes.
            stable_len = len(text.rstrip(REPLACEMENT_CHAR))
            new_text = text[self._prefix_len:stable_len]
            self._prefix_len = max(self._prefix_len, stable_len)
            self._pending = text[self._prefix_len:]
        else:
            new_text = text[self._prefix_len:]
            self._pending = ""
            self._advance_window(len(text))
        if not new_text:
            return None
        self._open_context = None
        before = len(self._output)
        self._output += new_text
        if check_stop and self.stop:
            return self._check_stop(before)
        return None

    def _advance_window(self, window_text_len: int) -> None:
        """Mark the whole window as emitted; move its start up once it has grown long."""
        if len(self._ids) > _WINDOW_TOKENS:
            # Keep the tokens since the previous stable point as context for the next token.
            del self._ids[:self._read]
            self._read = len(self._ids)
            self._prefix_len = len(self._decode(self._ids))
        else:
            self._read = len(self._ids)
            self._prefix_len = window_text_len

    def _check_stop(self, before: int) -> str | None:
        """Find the stop string completed first by the text added after `before`; truncate."""
        # The match ending first is the one a character-by-character stream would see first, so
        # the result does not depend on how the text was split into tokens; of matches ending
        # together, the longest.
        best: tuple[int, int, str] | None = None  # (end, start, stop string)
        for s in self.stop:
            # Only matches ending in the new text: earlier ones were looked for already.
            start = self._output.find(s, max(0, before - len(s) + 1))
            if start >= 0:
                candidate = (start + len(s), start, s)
                best = candidate if best is None else min(best, candidate)
        if best is None:
            return None
        end, start, s = best
        self._output = self._output[:end if self.include_stop_str_in_output else start]
        self.stop_reason = s
        return s

    def _stop_prefix_len(self) -> int:
        """Length of the longest tail of the output that is a proper prefix of a stop string."""
        if not self._output:
            return 0
        for k, s in self._prefix_ends.get(self._output[-1], ()):
            if self._output.endswith(s[:k]):
                return k
        return 0

    def text(self, finished: bool) -> str:
        """Output text so far. While unfinished, holds back a tail that might begin a stop string
        and any incomplete UTF-8; when finished, the full (truncated-at-stop) text."""
        if self.stop_reason is not None:
            return self._output
        if finished:
            return self._output + self._pending
        held = self._stop_prefix_len()
        return self._output[:len(self._output) - held] if held else self._output
