"""The OpenAI API's request and response bodies (plus vLLM's usual sampling extras).

Requests ignore unknown fields, as OpenAI's SDKs may send newer ones. Responses keep OpenAI's
explicit nulls (`"finish_reason": null`), except in a chat chunk's delta, which carries only
what it adds.
"""
import time
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_serializer, model_validator

from inference_engine.beam_search import BeamSearchParams
from inference_engine.entrypoints.openai.base import OpenAIBaseModel, RequestFieldError
from inference_engine.entrypoints.openai.structured_request import StructuredOutputsRequest
from inference_engine.entrypoints.openai.tool_calls import (ChatTool, DeltaToolCall,
                                                            MessageToolCall, ToolCall, ToolChoice,
                                                            forced_tool_mode, forced_tool_schema)
from inference_engine.sampling_params import SamplingParams


def _without_none(fields: dict, name: str) -> dict:
    """OpenAI's shape: a vLLM extra that was not asked for is left out, not null."""
    if fields.get(name, 0) is None:
        del fields[name]
    return fields


class PromptTokensDetails(OpenAIBaseModel):
    cached_tokens: int = 0  # found in the prefix cache, not computed


class UsageInfo(OpenAIBaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None

    @model_serializer(mode="wrap")
    def _drop_missing_details(self, handler):
        # Embeddings and scores have no cached-token count: their usage stays as it was.
        out = handler(self)
        if out.get("prompt_tokens_details") is None:
            out.pop("prompt_tokens_details", None)
        return out

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0):
        return cls(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                   total_tokens=prompt_tokens + completion_tokens,
                   prompt_tokens_details=PromptTokensDetails(cached_tokens=cached_tokens))


class StreamOptions(OpenAIBaseModel):
    include_usage: bool = False
    continuous_usage_stats: bool = False  # vLLM's: each chunk has its choice's usage so far


class SamplingRequest(StructuredOutputsRequest):
    """Fields that completions and chat share; `to_sampling_params` maps them to the engine."""
    model: str | None = None
    n: int = 1
    best_of: int | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)  # OpenAI's range
    top_p: float | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    # Extras of vLLM's API, under vLLM's names.
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    min_tokens: int = 0
    skip_special_tokens: bool = True
    spaces_between_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    priority: int = 0  # lower first; needs --scheduling-policy priority
    cache_salt: str | None = None  # prefix-cache sharing only with the same salt
    allowed_token_ids: list[int] | None = None
    bad_words: list[str] | None = None
    truncate_prompt_tokens: int | None = Field(default=None, ge=1)  # keep the last k
    prompt_logprobs: int | None = Field(default=None, ge=0, le=20)  # non-streamed answers
    use_beam_search: bool = False  # n beams; temperature unset: 0 (candidates by likelihood)
    length_penalty: float = Field(default=1.0, ge=-10, le=10)  # beams: score / length^p

    @model_validator(mode="after")
    def _stream_options_need_stream(self):
        if self.stream_options is not None and not self.stream:
            raise RequestFieldError(("stream_options",),
                                    "stream_options is only allowed when stream is true")
        return self

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def continuous_usage(self) -> bool:
        return self.include_usage and self.stream_options.continuous_usage_stats

    def to_beam_search_params(self, max_tokens: int) -> BeamSearchParams:
        return BeamSearchParams(beam_width=self.n, max_tokens=max_tokens,
                                ignore_eos=self.ignore_eos, temperature=self.temperature or 0.0,
                                length_penalty=self.length_penalty)

    def to_sampling_params(self, max_tokens: int, logprobs: int | None,
                           prompt_logprobs: int | None = None,
                           defaults: dict | None = None) -> SamplingParams:
        """Raises SamplingParamsError (a ValueError naming the field) on values out of range.
        Fields the request leaves unset take `defaults` (the model's generation config), else
        OpenAI's."""
        def value(name: str, openai_default: float):
            given = getattr(self, name)
            return given if given is not None else (defaults or {}).get(name, openai_default)

        return SamplingParams(
            n=self.n, best_of=self.best_of, temperature=value("temperature", 1.0),
            top_p=value("top_p", 1.0), top_k=value("top_k", -1), min_p=value("min_p", 0.0),
            presence_penalty=self.presence_penalty, frequency_penalty=self.frequency_penalty,
            repetition_penalty=value("repetition_penalty", 1.0), logit_bias=self.logit_bias,
            seed=self.seed, stop=self.stop, stop_token_ids=self.stop_token_ids,
            include_stop_str_in_output=self.include_stop_str_in_output,
            ignore_eos=self.ignore_eos, max_tokens=max_tokens, min_tokens=self.min_tokens,
            logprobs=logprobs, prompt_logprobs=prompt_logprobs,
            skip_special_tokens=self.skip_special_tokens,
            spaces_between_special_tokens=self.spaces_between_special_tokens,
            structured_outputs=self.structured_outputs_params(),
            allowed_token_ids=self.allowed_token_ids, bad_words=self.bad_words)


class CompletionRequest(SamplingRequest):
    """POST /v1/completions."""
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = 16
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=20)
    suffix: str | None = None


class ChatMessage(OpenAIBaseModel):
    """One message; `content` may be text or a list of `{"type": "text", "text": ...}` parts.
    Roles are OpenAI's, plus Llama 3's `ipython` (tool results in its templates)."""
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool", "function", "ipython"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None


class ChatCompletionRequest(SamplingRequest):
    """POST /v1/chat/completions."""
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    # vLLM's chat extras.
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    tools: list[ChatTool] | None = None
    tool_choice: ToolChoice | None = None  # None: "none" (text answers)
    parallel_tool_calls: bool = True

    @property
    def forced_tool_mode(self) -> str | None:
        return forced_tool_mode(self.tools, self.tool_choice)

    def _tool_constraint(self) -> dict[str, dict[str, Any]]:
        if self.forced_tool_mode is None:
            return {}
        schema = forced_tool_schema(self.tools, self.tool_choice, self.parallel_tool_calls)
        return {"tool_choice": {"json": schema}}


class CompletionLogProbs(OpenAIBaseModel):
    text_offset: list[int] = Field(default_factory=list)
    token_logprobs: list[float | None] = Field(default_factory=list)
    tokens: list[str] = Field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = Field(default_factory=list)


class CompletionChoice(OpenAIBaseModel):
    index: int
    text: str
    logprobs: CompletionLogProbs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    # vLLM's: per prompt token (None for the first) {token id: {logprob, rank, decoded_token}}.
    prompt_logprobs: list[dict[str, dict[str, Any]] | None] | None = None

    @model_serializer(mode="wrap")
    def _drop_prompt_logprobs(self, handler):
        return _without_none(handler(self), "prompt_logprobs")


class CompletionResponse(OpenAIBaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None


class TopLogprob(OpenAIBaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class ChatTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChatChoiceLogprobs(OpenAIBaseModel):
    content: list[ChatTokenLogprob] | None = None


class AssistantMessage(OpenAIBaseModel):
    role: str = "assistant"
    content: str | None = None
    reasoning_content: str | None = None  # with --reasoning-parser: the model's thinking
    tool_calls: list[ToolCall] = Field(default_factory=list)


class ChatCompletionChoice(OpenAIBaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatChoiceLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatCompletionResponse(OpenAIBaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatCompletionChoice]
    usage: UsageInfo
    prompt_logprobs: list[dict[str, dict[str, Any]] | None] | None = None  # as a choice's above

    @model_serializer(mode="wrap")
    def _drop_prompt_logprobs(self, handler):
        return _without_none(handler(self), "prompt_logprobs")


class DeltaMessage(OpenAIBaseModel):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None

    @model_serializer(mode="wrap")
    def _drop_nulls(self, handler):
        # OpenAI sends the role in the first chunk only, and no content key in the last one.
        return {k: v for k, v in handler(self).items() if v is not None}


class ChatStreamChoice(OpenAIBaseModel):
    index: int
    delta: DeltaMessage
    logprobs: ChatChoiceLogprobs | None = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class ChatCompletionChunk(OpenAIBaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatStreamChoice]
    usage: UsageInfo | None = None


class CompletionChunk(OpenAIBaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: UsageInfo | None = None
