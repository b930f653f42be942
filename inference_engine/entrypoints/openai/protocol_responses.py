"""OpenAI's Responses API (POST /v1/responses) as far as a stateless server goes: text input or
a list of items (messages, earlier function calls and their outputs), `instructions`, sampling
fields, `text.format` for structured outputs, function tools; the answer as an output message
and function calls. Nothing is stored: `previous_response_id` is refused."""
import time
import uuid
from typing import Any

from inference_engine.entrypoints.openai.base import OpenAIRequest
from inference_engine.entrypoints.openai.protocol import ChatCompletionRequest


def _text(content: str | list | None) -> str:
    """A message's text: itself, or its input_text / output_text parts joined. A ValueError
    says what is not text."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise ValueError("content must be text or a list of parts, got "
                         f"{type(content).__name__}")
    texts = [part.get("text", "") for part in content
             if isinstance(part, dict) and part.get("type") in
             ("input_text", "output_text", "text")]
    if not all(isinstance(text, str) for text in texts):
        raise ValueError("a text part's text must be a string")
    return "".join(texts)


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`input` items as chat messages: messages (a developer's as the system's), earlier
    function calls as the assistant's tool calls, their outputs as tool messages."""
    messages: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise ValueError(f"unknown message role {role!r} in input")
            messages.append({"role": "system" if role == "developer" else role,
                             "content": _text(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant" and "tool_calls" in messages[-1]:
                messages[-1]["tool_calls"].append(call)  # parallel calls: one message
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": _text(item.get("output"))})
        else:
            raise ValueError(f"input items of type {kind!r} are not supported")
    return messages


def chat_tools(tools: list[dict[str, Any]] | None, tool_choice) -> tuple[list | None, Any]:
    """The Responses API's function tools and tool_choice in chat's shapes."""
    if not tools:
        return None, None
    if any(t.get("type") != "function" for t in tools):
        raise ValueError("only function tools are supported")
    chat = [{"type": "function", "function": {k: t[k] for k in
                                              ("name", "description", "parameters", "strict")
                                              if k in t}} for t in tools]
    if isinstance(tool_choice, dict):
        tool_choice = {"type": "function", "function": {"name": tool_choice.get("name")}}
    return chat, tool_choice


class ResponsesRequest(OpenAIRequest):
    model: str | None = None
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    text: dict[str, Any] | None = None  # {"format": {"type": "text" | "json_object" | ...}}
    metadata: dict[str, str] | None = None
    user: str | None = None
    tools: list[dict[str, Any]] | None = None  # function tools
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool = True
    # vLLM's extras, as in chat.
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    structured_outputs: dict[str, Any] | None = None  # {"json" | "regex" | ...: ...}

    def to_chat_request(self) -> ChatCompletionRequest:
        """The same generation as a chat completion: `instructions` first, as a system
        message; `text.format` as response_format; function tools as chat's. A ValueError
        says what can't be taken."""
        items = ([{"role": "user", "content": self.input}] if isinstance(self.input, str)
                 else self.input)
        messages = [{"role": "system", "content": self.instructions}] if self.instructions \
            else []
        messages += chat_messages(items)
        fmt = (self.text or {}).get("format") or {"type": "text"}
        if not isinstance(fmt, dict):
            raise ValueError(f"text.format must be an object, got {type(fmt).__name__}")
        response_format = dict(fmt)
        if fmt.get("type") == "json_schema":  # flat here, nested in chat's response_format
            response_format = {"type": "json_schema", "json_schema": {
                k: v for k, v in fmt.items() if k in ("name", "description", "schema", "strict")}}
        tools, tool_choice = chat_tools(self.tools, self.tool_choice)
        return ChatCompletionRequest(
            model=self.model, messages=messages, max_tokens=self.max_output_tokens,
            temperature=self.temperature, top_p=self.top_p, stream=self.stream, user=self.user,
            top_k=self.top_k, min_p=self.min_p, repetition_penalty=self.repetition_penalty,
            seed=self.seed, response_format=response_format, tools=tools,
            structured_outputs=self.structured_outputs,
            tool_choice=tool_choice, parallel_tool_calls=self.parallel_tool_calls)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def response_body(request: ResponsesRequest, response_id: str, model: str, status: str,
                  output: list[dict], usage: dict | None, reason: str | None = None) -> dict:
    """A Response object of OpenAI's shape."""
    return {
        "id": response_id, "object": "response", "created_at": int(time.time()),
        "status": status, "error": None,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": request.instructions, "max_output_tokens": request.max_output_tokens,
        "model": model, "output": output, "parallel_tool_calls": request.parallel_tool_calls,
        "previous_response_id": None, "reasoning": None, "store": False,
        "temperature": request.temperature, "top_p": request.top_p,
        "text": request.text or {"format": {"type": "text"}},
        "tool_choice": request.tool_choice or "auto", "tools": request.tools or [],
        "truncation": "disabled", "usage": usage, "user": request.user,
        "metadata": request.metadata or {},
    }


def message_item(message_id: str, text: str, status: str = "completed") -> dict:
    return {"type": "message", "id": message_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def usage_body(prompt_tokens: int, output_tokens: int, cached_tokens: int = 0) -> dict:
    return {"input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": cached_tokens},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + output_tokens}


def function_call_item(call) -> dict:
    """A tool call (chat's ToolCall) as a Responses output item."""
    return {"type": "function_call", "id": new_id("fc"), "call_id": call.id,
            "name": call.function.name, "arguments": call.function.arguments,
            "status": "completed"}


def reasoning_item(text: str) -> dict:
    """A reasoning model's thinking as a Responses output item."""
    return {"type": "reasoning", "id": new_id("rs"), "summary": [], "status": "completed",
            "content": [{"type": "reasoning_text", "text": text}]}
