"""The base of every request and response body."""
import math

from pydantic import BaseModel, ConfigDict, model_validator


class OpenAIBaseModel(BaseModel):
    """Requests ignore unknown fields, as OpenAI's SDKs may send newer ones."""
    model_config = ConfigDict(extra="ignore")


class OpenAIRequest(OpenAIBaseModel):
    """A request body. Before any field is read, the raw body is checked for what JSON lets
    through but no field can use: a lone UTF-16 surrogate (`"\\ud800"`: no tokenizer can
    encode it) and the non-standard `NaN`/`Infinity` numbers Python's JSON reader accepts.
    Either answers 400, naming the field."""

    @model_validator(mode="before")
    @classmethod
    def _check_raw_values(cls, data):
        if isinstance(data, dict):
            _check_values(data, ())
        return data


class RequestFieldError(ValueError):
    """A request's bad value that a validator found; `loc` is its path in the body (the
    server's 400 names it as the error's param)."""

    def __init__(self, loc: tuple, message: str):
        super().__init__(message)
        self.loc = loc


_SCALARS = frozenset({int, bool, type(None)})  # nothing to check in these


def _check_values(value, loc: tuple) -> None:
    """Raises RequestFieldError at the first lone surrogate or non-finite number in a parsed
    JSON value. Lists are sorted by their items' types in C first (a prompt of a million token
    ids costs milliseconds), and nesting is walked without recursion (a body may nest deeper
    than the recursion limit)."""
    stack = [(value, loc)]
    while stack:
        value, loc = stack.pop()
        kind = type(value)
        if kind is str:
            _check_str(value, loc)
        elif kind is float:
            if not math.isfinite(value):
                raise RequestFieldError(loc, f"numbers must be finite, got {value}")
        elif kind is dict:
            for key, item in value.items():
                _check_str(key, loc)
                if type(item) not in _SCALARS:
                    stack.append((item, (*loc, key)))
        elif kind is list and not set(map(type, value)) <= _SCALARS:
            stack.extend((item, (*loc, i)) for i, item in enumerate(value)
                         if type(item) not in _SCALARS)


def _check_str(text: str, loc: tuple) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RequestFieldError(loc, "strings must be valid Unicode (a lone UTF-16 "
                                    f"surrogate at character {exc.start})") from None
