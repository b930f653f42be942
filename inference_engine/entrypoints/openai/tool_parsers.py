"""Tool calls that the model chose to make (`tool_choice="auto"`), found in its text.

Each model family writes calls its own way, so the server is told which parser to use
(`--enable-auto-tool-choice --tool-call-parser NAME`, as vLLM's):

- `hermes` (Qwen2.5, Qwen3, Hermes): `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`,
  after any text;
- `llama3_json` (Llama 3.1+): the answer is `{"name": ..., "parameters": {...}}`, calls separated
  by `;`, maybe after `<|python_tag|>`.

Text that is not a well-formed call stays the answer's content.
"""
import json
import re

from inference_engine.entrypoints.openai.reasoning import partial_suffix
from inference_engine.entrypoints.openai.tool_calls import (ChatTool, FunctionCall, ToolCall,
                                                             ToolChoice, forced_tool_mode,
                                                             parse_forced_tool_calls)


class ToolParser:
    """Splits a finished answer into its content and its calls, and tells a stream where the
    calls begin (so that their text is not sent as content)."""

    def calls_start(self, text: str) -> int | None:
        """Where the calls begin in `text` (the whole answer so far), or None if they have
        not begun; a stream sends only text before this (and before `undecided`)."""
        raise NotImplementedError

    def undecided(self, text: str) -> int:
        """How many characters at the end of `text` may still turn out to begin a call."""
        raise NotImplementedError

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        raise NotImplementedError


def _call(name, arguments) -> ToolCall:
    if not isinstance(name, str) or not isinstance(arguments, (dict, str)):
        raise ValueError("not a call")
    if isinstance(arguments, str):
        arguments = json.loads(arguments)  # must be JSON too
    return ToolCall(function=FunctionCall(name=name, arguments=json.dumps(arguments,
                                                                          ensure_ascii=False)))


class HermesToolParser(ToolParser):
    START, END = "<tool_call>", "</tool_call>"
    CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)

    def calls_start(self, text: str) -> int | None:
        index = text.find(self.START)
        return None if index < 0 else index

    def undecided(self, text: str) -> int:
        return partial_suffix(text, self.START)

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        start = self.calls_start(text)
        if start is None:
            return text, []
        try:
            calls = []
            for body in self.CALL.findall(text[start:]):
                value = json.loads(body)
                calls.append(_call(value.get("name"), value.get("arguments", {})))
        except (ValueError, AttributeError):
            return text, []
        content = text[:start].strip()
        return content or None, calls


class Llama3JsonToolParser(ToolParser):
    TAG = "<|python_tag|>"

    def calls_start(self, text: str) -> int | None:
        stripped = text.lstrip()  # the answer is calls or none: blanks before them are theirs
        return 0 if stripped.startswith("{") or stripped.startswith(self.TAG) else None

    def undecided(self, text: str) -> int:
        stripped = text.lstrip()
        if not stripped or self.TAG.startswith(stripped):
            return len(text)  # nothing but blanks, or the tag's beginning: not decided yet
        return 0

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        start = self.calls_start(text)
        if start is None:
            return text, []
        body = text[start:].removeprefix(self.TAG).strip()
        decoder, calls, index = json.JSONDecoder(), [], 0
        try:
            while index < len(body):
                value, index = decoder.raw_decode(body, index)
                calls.append(_call(value.get("name"),
                                   value.get("parameters", value.get("arguments", {}))))
                index = len(body) - len(body[index:].lstrip().removeprefix(";").lstrip())
        except (ValueError, AttributeError):
            return text, []
        return None, calls


class ForcedToolParser(ToolParser):
    """A call the request forced: the whole answer is its JSON (structured outputs). A named
    function's answer is its arguments alone, which a stream sends as they come."""

    def __init__(self, tools: list[ChatTool], tool_choice: ToolChoice):
        self.tools, self.tool_choice = tools, tool_choice
        self.named = forced_tool_mode(tools, tool_choice) == "named"

    def calls_start(self, text: str) -> int | None:
        return 0

    def undecided(self, text: str) -> int:
        return 0

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        calls = parse_forced_tool_calls(self.tools, self.tool_choice, text)
        return (text, []) if calls is None else (None, calls)


TOOL_PARSERS = {"hermes": HermesToolParser, "llama3_json": Llama3JsonToolParser}
