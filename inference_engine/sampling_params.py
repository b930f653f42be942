"""Sampling parameters of one request, checked on construction (vLLM's names and defaults)."""
from dataclasses import dataclass, field
from typing import Any

from inference_engine.errors import SamplingParamsError

_GREEDY_EPS = 1e-5
STRUCTURED_OUTPUT_KINDS = ("json", "regex", "choice", "grammar", "json_object")


@dataclass
class StructuredOutputsParams:
    """What a request's output must match (vLLM's; its older name was GuidedDecodingParams;
    structured_output/ compiles and enforces it). Exactly one of: `json`, a JSON schema (a dict
    or its text); `regex`; `choice`, strings one of which the output is; `grammar`, EBNF as
    llama.cpp's GBNF writes it; `json_object`, any JSON object."""
    json: str | dict | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool = False

    def __post_init__(self) -> None:
        given = [k for k in STRUCTURED_OUTPUT_KINDS if getattr(self, k) not in (None, False)]
        if len(given) != 1:
            raise SamplingParamsError(
                "structured_outputs", "structured outputs need exactly one of json, regex, "
                f"choice, grammar or json_object; got {', '.join(given) or 'none'}")
        if self.choice is not None and (not self.choice or not all(
                isinstance(c, str) and c for c in self.choice)):
            raise SamplingParamsError("structured_outputs",
                                      "choice must be a non-empty list of non-empty strings")

    @property
    def kind(self) -> str:
        return next(k for k in STRUCTURED_OUTPUT_KINDS if getattr(self, k) not in (None, False))

    @classmethod
    def from_value(cls, value: "StructuredOutputsParams | dict") -> "StructuredOutputsParams":
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise SamplingParamsError("structured_outputs", "structured_outputs must be a "
                                      f"StructuredOutputsParams or a dict, got {type(value)}")
        unknown = set(value) - set(STRUCTURED_OUTPUT_KINDS)
        if unknown:
            raise SamplingParamsError("structured_outputs", "unknown structured_outputs field(s) "
                                      f"{', '.join(sorted(unknown))}; expected one of "
                                      f"{', '.join(STRUCTURED_OUTPUT_KINDS)}")
        return cls(**value)


@dataclass
class SamplingParams:
    """How to sample the completions of one request.

    `n` completions are returned out of `best_of` (default `n`) sampled ones, the best by
    cumulative log-probability. `temperature == 0` means greedy. `stop` strings end a completion
    and are cut from its text unless `include_stop_str_in_output`. `logprobs=k` returns the
    sampled token's log-probability and the top-k alternatives at every step;
    `prompt_logprobs=k` does the same for the prompt tokens. `structured_outputs` (a
    StructuredOutputsParams, or a dict of its fields) constrains the tokens to a JSON schema, a
    regular expression, a choice or a grammar. `allowed_token_ids` keeps sampling to those
    tokens; `bad_words` are never completed (each word's tokens, with and without a leading
    space, are banned as the last of them would finish it; the engine tokenizes them).
    """
    n: int = 1
    best_of: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: dict[int, float] | None = None
    seed: int | None = None
    stop: list[str] | str | None = None
    stop_token_ids: list[int] | None = None
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    max_tokens: int | None = 16
    min_tokens: int = 0
    logprobs: int | None = None
    prompt_logprobs: int | None = None
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    detokenize: bool = True
    output_kind: str = field(default="cumulative")
    structured_outputs: StructuredOutputsParams | dict[str, Any] | None = None
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] | None = None
    # The bad words' token sequences, set by the engine from its tokenizer.
    bad_words_token_ids: list[list[int]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.structured_outputs is not None:
            self.structured_outputs = StructuredOutputsParams.from_value(self.structured_outputs)
        if self.best_of is None:
            self.best_of = self.n
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        self.logit_bias = {_token_id(k): float(v) for k, v in (self.logit_bias or {}).items()}
        if self.allowed_token_ids is not None:
            self.allowed_token_ids = list(self.allowed_token_ids)
        self.bad_words = list(self.bad_words or [])
        self._verify()
        if self.temperature < _GREEDY_EPS:
            # Greedy: the other sampling knobs would not change the argmax.
            self.temperature, self.top_p, self.top_k, self.min_p = 0.0, 1.0, -1, 0.0

    def _verify(self) -> None:
        checks = [
            (self.n >= 1, "n", f"n must be at least 1, got {self.n}"),
            (self.best_of >= self.n, "best_of",
             f"best_of must be >= n, got n={self.n} and best_of={self.best_of}"),
            (self.temperature >= 0.0, "temperature",
             f"temperature must be non-negative, got {self.temperature}"),
            (0.0 < self.top_p <= 1.0, "top_p", f"top_p must be in (0, 1], got {self.top_p}"),
            (self.top_k == -1 or self.top_k >= 1, "top_k",
             f"top_k must be -1 (disable) or at least 1, got {self.top_k}"),
            (0.0 <= self.min_p <= 1.0, "min_p", f"min_p must be in [0, 1], got {self.min_p}"),
            (-2.0 <= self.presence_penalty <= 2.0, "presence_penalty",
             f"presence_penalty must be in [-2, 2], got {self.presence_penalty}"),
            (-2.0 <= self.frequency_penalty <= 2.0, "frequency_penalty",
             f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}"),
            (all(-100 <= v <= 100 for v in self.logit_bias.values()), "logit_bias",
             "logit_bias values must be in [-100, 100]"),
            (0.0 < self.repetition_penalty <= 2.0, "repetition_penalty",
             f"repetition_penalty must be in (0, 2], got {self.repetition_penalty}"),
            (self.max_tokens is None or self.max_tokens >= 1, "max_tokens",
             f"max_tokens must be at least 1, got {self.max_tokens}"),
            (self.min_tokens >= 0, "min_tokens",
             f"min_tokens must be non-negative, got {self.min_tokens}"),
            (self.max_tokens is None or self.min_tokens <= self.max_tokens, "min_tokens",
             f"min_tokens must be <= max_tokens={self.max_tokens}, got {self.min_tokens}"),
            (self.logprobs is None or self.logprobs >= 0, "logprobs",
             f"logprobs must be non-negative, got {self.logprobs}"),
            (self.prompt_logprobs is None or self.prompt_logprobs >= 0, "prompt_logprobs",
             f"prompt_logprobs must be non-negative, got {self.prompt_logprobs}"),
            (all(s for s in self.stop), "stop", "stop strings must not be empty"),
            (self.seed is None or 0 <= self.seed < 2**63, "seed",
             f"seed must be in [0, 2^63), got {self.seed}"),
            (self.output_kind in ("cumulative", "delta"), "output_kind",
             f"output_kind must be 'cumulative' or 'delta', got {self.output_kind}"),
            (self.allowed_token_ids is None or len(self.allowed_token_ids) > 0,
             "allowed_token_ids", "allowed_token_ids must not be empty"),
            (all(w.strip() for w in self.bad_words), "bad_words",
             "bad_words must not be empty or blank"),
        ]
        for ok, name, message in checks:
            if not ok:
                raise SamplingParamsError(name, message)

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def restricts_tokens(self) -> bool:
        """Some tokens are masked out (allowed_token_ids, bad_words)."""
        return self.allowed_token_ids is not None or bool(self.bad_words_token_ids)

    @property
    def bans_after_tokens(self) -> bool:
        """A bad word of several tokens: its ban depends on the last tokens, read on the host."""
        return any(len(ids) > 1 for ids in self.bad_words_token_ids)

    @property
    def needs_penalties(self) -> bool:
        return (self.presence_penalty != 0.0 or self.frequency_penalty != 0.0
                or self.repetition_penalty != 1.0)


def _token_id(key: int | str) -> int:
    """A logit_bias key: a token id, or its decimal text (as JSON objects carry it)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.isascii() and key.isdigit():  # not "³", "-1", " 1"
        return int(key)
    raise SamplingParamsError("logit_bias", f"logit_bias keys must be token ids, got {key!r}")
