"""Tool calls read while their JSON arrives, so that a stream can send each call's name once it
is complete and its arguments as they grow, as OpenAI streams calls.

The calls are JSON objects, `{"name": ..., "arguments": ...}` (or `"parameters"`), after the
point where the calls begin: hermes puts each inside `<tool_call>` tags, llama3_json separates
them with `;`, a forced "required" answer is one array of them. Whatever lies between the objects
is skipped. Only an object's own keys are read; each value is kept as where its text lies, so
the arguments go out as the model wrote them (their concatenation is the arguments' JSON).
Each character is read once: the scanner keeps its place between feeds.
"""
from dataclasses import dataclass, field

ARGUMENT_KEYS = ("arguments", "parameters")


@dataclass
class ValueSpan:
    """Where a key's value lies in the text; `end` is None while it is still being written."""
    start: int
    kind: str  # "string", "container" or "scalar"
    end: int | None = None


@dataclass
class ScannedCall:
    values: dict[str, ValueSpan] = field(default_factory=dict)
    closed: bool = False  # the object's closing brace was read

    def arguments(self) -> ValueSpan | None:
        return next((self.values[k] for k in ARGUMENT_KEYS if k in self.values), None)


class CallScanner:
    """Feed it the calls' text as it grows (always the whole of it); `calls` holds the objects
    read so far and `pos` is how far the text has been read."""

    def __init__(self):
        self.text = ""
        self.pos = 0
        self.calls: list[ScannedCall] = []
        self._depth = 0
        self._in_string = self._escape = False
        # Inside a call object (depth 1): "key", "colon", "value", "in_value" or "after".
        self._state = "key"
        self._key_start = 0
        self._key = ""
        self._value: ValueSpan | None = None

    def feed(self, text: str) -> None:
        self.text = text
        while self.pos < len(text):
            self._read(text[self.pos])
            self.pos += 1

    def _read(self, c: str) -> None:
        if self._in_string:
            if self._escape:
                self._escape = False
            elif c == "\\":
                self._escape = True
            elif c == '"':
                self._in_string = False
                if self._depth == 1:
                    self._string_closed()
            return
        if self._depth == 0:  # between calls: only an object's opening brace counts
            if c == "{":
                self._depth, self._state = 1, "key"
                self.calls.append(ScannedCall())
            return
        if c == '"':
            self._in_string = True
            if self._depth == 1 and self._state == "key":
                self._key_start = self.pos + 1
            elif self._depth == 1 and self._state == "value":
                self._open_value("string")
        elif c in "{[":
            if self._depth == 1 and self._state == "value":
                self._open_value("container")
            self._depth += 1
        elif c in "}]":
            self._depth -= 1
            if self._depth == 1 and self._state == "in_value" and self._value.kind == "container":
                self._close_value(self.pos + 1)
            elif self._depth == 0:
                if self._state == "in_value":  # a scalar ends at the object's end
                    self._close_value(self.pos)
                self.calls[-1].closed = True
        elif self._depth == 1:
            if c == ":" and self._state == "colon":
                self._state = "value"
            elif c == "," and self._state in ("in_value", "after"):
                if self._state == "in_value":
                    self._close_value(self.pos)
                self._state = "key"
            elif not c.isspace() and self._state == "value":
                self._open_value("scalar")

    def _string_closed(self) -> None:
        if self._state == "key":
            self._key, self._state = self.text[self._key_start:self.pos], "colon"
        elif self._state == "in_value" and self._value.kind == "string":
            self._close_value(self.pos + 1)

    def _open_value(self, kind: str) -> None:
        self._value = ValueSpan(self.pos, kind)
        self.calls[-1].values[self._key] = self._value
        self._state = "in_value"

    def _close_value(self, end: int) -> None:
        while end > self._value.start and self.text[end - 1].isspace():
            end -= 1  # a scalar's trailing blanks are not its text
        self._value.end = end
        self._state = "after"
