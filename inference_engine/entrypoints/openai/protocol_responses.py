"""OpenAI's Responses API (POST /v1/responses) as far as a stateless server goes: text input or
a list of messages, `instructions`, sampling fields, `text.format` for structured outputs; the
answer as one output message. Nothing is stored: `previous_response_id` is refused."""
import time
import uuid
from typing import Any, Literal

from inference_engine.entrypoints.openai.base import OpenAIBaseModel
from inference_engine.entrypoints.openai.protocol import ChatCompletionRequest, ChatMessage


class InputMessage(OpenAIBaseModel):
    """A message of `input`: text, or parts of type input_text / output_text."""
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[dict[str, Any]]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.get("text", "") for part in self.content
                       if part.get("type") in ("input_text", "output_text", "text"))


class ResponsesRequest(OpenAIBaseModel):
    model: str | None = None
    input: str | list[InputMessage]
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
    tools: list[dict[str, Any]] | None = None  # refused when given: not served here yet
    # vLLM's extras, as in chat.
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None

    def to_chat_request(self) -> ChatCompletionRequest:
        """The same generation as a chat completion: `instructions` first, as a system
        message; `text.format` as response_format."""
        items = ([InputMessage(role="user", content=self.input)] if isinstance(self.input, str)
                 else self.input)
        messages = [ChatMessage(role="system", content=self.instructions)] if self.instructions \
            else []
        messages += [ChatMessage(role="system" if m.role == "developer" else m.role,
                                 content=m.text()) for m in items]
        fmt = (self.text or {}).get("format") or {"type": "text"}
        response_format = dict(fmt)
        if fmt.get("type") == "json_schema":  # flat here, nested in chat's response_format
            response_format = {"type": "json_schema", "json_schema": {
                k: v for k, v in fmt.items() if k in ("name", "description", "schema", "strict")}}
        return ChatCompletionRequest(
            model=self.model, messages=messages, max_tokens=self.max_output_tokens,
            temperature=self.temperature, top_p=self.top_p, stream=self.stream, user=self.user,
            top_k=self.top_k, min_p=self.min_p, repetition_penalty=self.repetition_penalty,
            seed=self.seed, response_format=response_format)


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
        "model": model, "output": output, "parallel_tool_calls": True,
        "previous_response_id": None, "reasoning": None, "store": False,
        "temperature": request.temperature, "top_p": request.top_p,
        "text": request.text or {"format": {"type": "text"}}, "tool_choice": "auto",
        "tools": [], "truncation": "disabled", "usage": usage, "user": request.user,
        "metadata": request.metadata or {},
    }


def message_item(message_id: str, text: str, status: str = "completed") -> dict:
    return {"type": "message", "id": message_id, "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def usage_body(prompt_tokens: int, output_tokens: int) -> dict:
    return {"input_tokens": prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + output_tokens}
