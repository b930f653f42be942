"""Tool calls in chat completions (OpenAI's `tools` and `tool_choice`).

The tools go to the chat template, which writes them into the prompt as the model was trained
to see them. A call the request forces is generated under structured outputs, so it is valid
JSON of the tool's parameters whatever the model: `tool_choice={"type": "function", "function":
{"name": ...}}` constrains the output to that tool's arguments, `"required"` to a list of one or
more calls of any tool (`[{"name": ..., "parameters": {...}}]`, as vLLM does). `"none"` lets the
model answer in text. `"auto"` lets the model decide; a parser of its family's call format finds
the calls in its text (tool_parsers.py; a server flag, as in vLLM).
"""
import json
import uuid
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_serializer

from inference_engine.entrypoints.openai.base import OpenAIBaseModel
from inference_engine.errors import SamplingParamsError


class FunctionDefinition(OpenAIBaseModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatTool(OpenAIBaseModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class CalledFunction(OpenAIBaseModel):
    """The function of a call in an earlier assistant message: its arguments as JSON text
    (OpenAI's), or an object."""
    model_config = ConfigDict(extra="allow")
    name: str
    arguments: str | dict[str, Any] = "{}"


class MessageToolCall(OpenAIBaseModel):
    """A call in an earlier assistant message (`messages[i].tool_calls`)."""
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    type: Literal["function"] = "function"
    function: CalledFunction


class NamedFunction(OpenAIBaseModel):
    name: str


class NamedToolChoice(OpenAIBaseModel):
    type: Literal["function"] = "function"
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class FunctionCall(OpenAIBaseModel):
    name: str
    arguments: str  # JSON text, as OpenAI sends it


class ToolCall(OpenAIBaseModel):
    id: str = Field(default_factory=lambda: f"chatcmpl-tool-{uuid.uuid4().hex}")
    type: Literal["function"] = "function"
    function: FunctionCall


class _DeltaModel(OpenAIBaseModel):
    @model_serializer(mode="wrap")
    def _drop_nulls(self, handler):
        # A stream's pieces carry only what they add, as OpenAI's do.
        return {k: v for k, v in handler(self).items() if v is not None}


class DeltaFunctionCall(_DeltaModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(_DeltaModel):
    """A streamed piece of call `index`: its first piece has the id and the name, later ones
    more of its arguments' text."""
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None


def forced_tool_mode(tools: list[ChatTool] | None, tool_choice: ToolChoice | None) -> str | None:
    """"named" or "required" when the request forces tool calls, else None."""
    if tool_choice is None or tool_choice == "none":
        return None
    if not tools:
        raise SamplingParamsError("tool_choice", "tool_choice needs tools")
    if tool_choice == "auto":
        return None
    if tool_choice == "required":
        return "required"
    if tool_choice.function.name not in {t.function.name for t in tools}:
        raise SamplingParamsError("tool_choice", f"tool_choice names "
                                  f"{tool_choice.function.name!r}, which is not among the tools")
    return "named"


def _parameters(tool: ChatTool) -> dict[str, Any]:
    return tool.function.parameters or {"type": "object", "properties": {}}


def forced_tool_schema(tools: list[ChatTool], tool_choice: ToolChoice,
                       parallel: bool = True) -> dict[str, Any]:
    """The JSON schema that a forced call's output must match (one call only, unless
    `parallel`, for "required")."""
    if forced_tool_mode(tools, tool_choice) == "named":
        return _parameters(next(t for t in tools if t.function.name == tool_choice.function.name))
    calls = [{"type": "object", "properties": {"name": {"type": "string",
                                                        "enum": [t.function.name]},
                                               "parameters": _parameters(t)},
              "required": ["name", "parameters"]} for t in tools]
    return {"type": "array", "minItems": 1, "items": {"anyOf": calls},
            **({} if parallel else {"maxItems": 1})}


def parse_forced_tool_calls(tools: list[ChatTool], tool_choice: ToolChoice,
                            text: str) -> list[ToolCall] | None:
    """The calls in a forced call's output; None when it is no complete JSON (cut short by
    max_tokens), which is then returned as content."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    if forced_tool_mode(tools, tool_choice) == "named":
        return [ToolCall(function=FunctionCall(name=tool_choice.function.name,
                                               arguments=json.dumps(value, ensure_ascii=False)))]
    return [ToolCall(function=FunctionCall(name=call["name"], arguments=json.dumps(
        call["parameters"], ensure_ascii=False))) for call in value]


def template_messages(conversation: list[dict]) -> list[dict]:
    """Assistant tool calls as chat templates read them: arguments as objects (templates write
    them with `tojson`), where OpenAI sends JSON text."""
    for message in conversation:
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            if isinstance(function.get("arguments"), str):
                try:
                    function["arguments"] = json.loads(function["arguments"])
                except json.JSONDecodeError:
                    pass  # not JSON: the template gets the text as it came
    return conversation
