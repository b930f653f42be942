"""`--speculative-config` (vLLM's): which proposer drafts tokens, and how many a step."""
import json
from dataclasses import dataclass

METHODS = ("ngram",)


@dataclass
class SpeculativeConfig:
    """n-gram drafts (prompt lookup): the tokens that followed the latest earlier occurrence of
    the sequence's last `prompt_lookup_max` .. `prompt_lookup_min` tokens, at most
    `num_speculative_tokens` of them a step."""
    method: str = "ngram"
    num_speculative_tokens: int = 3
    prompt_lookup_max: int = 4
    prompt_lookup_min: int = 1
    # No drafts while this many requests or more run (vLLM's): a full batch is compute-bound,
    # and the drafts' extra rows cost about what they save.
    disable_by_batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"speculative method {self.method!r} is not supported "
                             f"(supported: {', '.join(METHODS)})")
        if self.num_speculative_tokens < 1:
            raise ValueError("num_speculative_tokens must be at least 1")
        if self.disable_by_batch_size is not None and self.disable_by_batch_size < 1:
            raise ValueError("disable_by_batch_size must be at least 1")
        if not 1 <= self.prompt_lookup_min <= self.prompt_lookup_max:
            raise ValueError("speculative decoding needs 1 <= prompt_lookup_min <= "
                             f"prompt_lookup_max, got {self.prompt_lookup_min} and "
                             f"{self.prompt_lookup_max}")

    @classmethod
    def parse(cls, value: "str | dict | SpeculativeConfig | None") -> "SpeculativeConfig | None":
        """From the CLI's JSON text, LLM's dict, or None (no speculative decoding)."""
        if value is None or isinstance(value, SpeculativeConfig):
            return value
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"speculative_config is no JSON object: {exc}") from exc
        if not isinstance(value, dict):
            raise ValueError("speculative_config must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown speculative_config keys: {sorted(unknown)} "
                             f"(known: {sorted(known)})")
        return cls(**value)
