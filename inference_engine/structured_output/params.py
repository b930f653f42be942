"""What a request's output must match (vLLM's StructuredOutputsParams; its older name was
GuidedDecodingParams)."""
from dataclasses import dataclass

from inference_engine.sampling_params import SamplingParamsError

KINDS = ("json", "regex", "choice", "grammar", "json_object")


@dataclass
class StructuredOutputsParams:
    """Exactly one of: `json`, a JSON schema (a dict or its text); `regex`; `choice`, strings
    one of which the output is; `grammar`, EBNF as llama.cpp's GBNF writes it; `json_object`,
    any JSON object."""
    json: str | dict | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool = False

    def __post_init__(self) -> None:
        given = [k for k in KINDS if getattr(self, k) not in (None, False)]
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
        return next(k for k in KINDS if getattr(self, k) not in (None, False))

    @classmethod
    def from_value(cls, value: "StructuredOutputsParams | dict") -> "StructuredOutputsParams":
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            raise SamplingParamsError("structured_outputs", "structured_outputs must be a "
                                      f"StructuredOutputsParams or a dict, got {type(value)}")
        unknown = set(value) - set(KINDS)
        if unknown:
            raise SamplingParamsError("structured_outputs", "unknown structured_outputs field(s) "
                                      f"{', '.join(sorted(unknown))}; expected one of "
                                      f"{', '.join(KINDS)}")
        return cls(**value)
