"""POST /v1/chat/completions: the messages rendered by the tokenizer's chat template (or the
request's), generated like a completion, and streamed as OpenAI's chunks: the assistant role
first, then content deltas (the engine's delta outputs), then the finish reason."""
import logging
import time
from collections.abc import AsyncIterator

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from inference_engine.engine.detokenizer import decode_token
from inference_engine.entrypoints.openai.protocol import (AssistantMessage, ChatChoiceLogprobs,
                                                          ChatCompletionChoice,
                                                          ChatCompletionChunk,
                                                          ChatCompletionRequest,
                                                          ChatCompletionResponse, ChatMessage,
                                                          ChatStreamChoice, ChatTokenLogprob,
                                                          DeltaMessage, TopLogprob, UsageInfo)
from inference_engine.entrypoints.openai.response_streams import (SSE_DONE,
                                                                  collect_final_outputs,
                                                                  merge_async_iterators, sse,
                                                                  started_stream)
from inference_engine.entrypoints.openai.errors import OpenAIError, engine_error
from inference_engine.entrypoints.openai.serving_engine import OpenAIServing
from inference_engine.entrypoints.openai.reasoning import REASONING_PARSERS, ReasoningStream
from inference_engine.entrypoints.openai.text_chunks import ChatTextChunks
from inference_engine.entrypoints.openai.tool_calls import template_messages
from inference_engine.entrypoints.openai.tool_call_stream import ToolCallStream
from inference_engine.entrypoints.openai.tool_parsers import (TOOL_PARSERS, ForcedToolParser,
                                                              ToolParser)
from inference_engine.outputs import RequestOutput, RequestOutputKind
from inference_engine.sequence import Logprob

logger = logging.getLogger(__name__)


class OpenAIServingChat(OpenAIServing):
    """Serves chat completions through the chat template; `tool_call_parser` names the parser
    of the model's own tool calls (tool_choice "auto"), `reasoning_parser` that of its thinking
    (returned as reasoning_content)."""
    prompt_field = "messages"

    def __init__(self, engine, served_model_name: str, tool_call_parser: str | None = None,
                 reasoning_parser: str | None = None, *, prep, lora_requests: dict | None = None):
        super().__init__(engine, served_model_name, prep=prep, lora_requests=lora_requests)
        self.auto_tool_parser = TOOL_PARSERS[tool_call_parser] if tool_call_parser else None
        self.reasoning_parser = REASONING_PARSERS[reasoning_parser] if reasoning_parser else None

    async def create_chat_completion(self, request: ChatCompletionRequest,
                                     raw_request: Request) -> Response:
        lora = self.check_model(request.model)
        self.check_engine()
        request_id = f"chatcmpl-{raw_request.state.request_id}"
        if request.top_logprobs is not None and not request.logprobs:
            raise OpenAIError(400, "top_logprobs needs logprobs=true", param="top_logprobs")
        prompt, prompt_ids = await self.render_request(request)
        max_tokens = (request.max_completion_tokens if request.max_completion_tokens is not None
                      else request.max_tokens)
        params = self.sampling_params(
            request, self.max_tokens_for(len(prompt_ids), max_tokens, "messages"),
            (request.top_logprobs or 0) if request.logprobs else None, request.prompt_logprobs)
        parser = self._tool_parser(request)  # after the params, which check the tool choice
        logger.info("%s: %d prompt tokens, n=%d, max_tokens=%d, stream=%s", request_id,
                    len(prompt_ids), request.n, params.max_tokens, request.stream)
        kind = RequestOutputKind.DELTA if request.stream else RequestOutputKind.FINAL_ONLY
        self.check_engine()
        outputs = merge_async_iterators(
            self.generate(request, request_id, (prompt, prompt_ids), params, kind, lora))
        created = int(time.time())
        if request.stream:
            outputs = await started_stream(outputs, raw_request)
            if outputs is None:
                return Response(status_code=499)  # nobody is listening any more
            return StreamingResponse(self._stream(request, request_id, created, outputs, parser),
                                     media_type="text/event-stream")
        final = await collect_final_outputs(outputs, raw_request)
        if final is None:
            return Response(status_code=499)  # nobody is listening any more
        output = final[0]
        choices = []
        for c in output.outputs:
            reasoning, text = (self.reasoning_parser().split(c.text)
                               if self.reasoning_parser is not None else (None, c.text))
            content, calls = parser.parse(text or "") if parser is not None else (text, [])
            if reasoning is not None and not content:
                content = None  # all thinking (cut short): no answer
            choices.append(ChatCompletionChoice(
                index=c.index, message=AssistantMessage(content=content, tool_calls=calls,
                                                        reasoning_content=reasoning),
                logprobs=self._logprobs(request, c.token_ids, c.logprobs),
                finish_reason=self._finish_reason(parser, bool(calls), c.finish_reason),
                stop_reason=c.stop_reason))
        response = ChatCompletionResponse(
            id=request_id, created=created, choices=choices,
            model=self.response_model(request.model), usage=_usage(output),
            prompt_logprobs=self.prompt_logprobs_json(output, request.prompt_logprobs))
        return JSONResponse(response.model_dump())

    def _tool_parser(self, request: ChatCompletionRequest) -> ToolParser | None:
        """What finds the answer's tool calls: a forced call's JSON, the model's own calls
        (tool_choice "auto", the default with tools once the server has a parser), or none."""
        if request.forced_tool_mode is not None:
            return ForcedToolParser(request.tools, request.tool_choice)
        if not request.tools or request.tool_choice == "none":
            return None
        if self.auto_tool_parser is None:
            if request.tool_choice == "auto":
                raise OpenAIError(400, '"auto" tool choice needs the server started with '
                                  "--enable-auto-tool-choice and --tool-call-parser",
                                  param="tool_choice")
            return None
        return self.auto_tool_parser()

    @staticmethod
    def _finish_reason(parser: ToolParser | None, made_calls: bool, finish_reason: str | None):
        """"tool_calls" when the model chose to call tools (a forced call just stops)."""
        if made_calls and finish_reason == "stop" and not isinstance(parser, ForcedToolParser):
            return "tool_calls"
        return finish_reason

    async def render_request(self, request: ChatCompletionRequest) -> tuple[str, list[int]]:
        """A chat request's prompt (text and token ids): its messages and tools through the
        chat template, cut to its last truncate_prompt_tokens."""
        tools = [t.model_dump(exclude_none=True) for t in request.tools or []] or None
        prompt, prompt_ids = await self.render_chat(request.messages, request.chat_template,
                                                    request.add_generation_prompt,
                                                    request.continue_final_message,
                                                    request.chat_template_kwargs, tools)
        if request.truncate_prompt_tokens is not None:  # the conversation's last tokens
            prompt_ids = prompt_ids[-request.truncate_prompt_tokens:]
        return prompt, prompt_ids

    async def render_chat(self, messages: list[ChatMessage], chat_template: str | None,
                          add_generation_prompt: bool, continue_final_message: bool,
                          chat_template_kwargs: dict | None = None,
                          tools: list[dict] | None = None) -> tuple[str, list[int]]:
        """The prompt text and token ids of a conversation (and the tools, for templates that
        describe them to the model); `chat_template` is the request's own, if any."""
        conversation = template_messages([_plain_message(m) for m in messages])
        text = await self.prep.render_chat(
            conversation, chat_template, tools,
            # Continuing the last message means not opening a new one.
            add_generation_prompt and not continue_final_message, continue_final_message,
            chat_template_kwargs)
        # The template writes the special tokens (BOS included) itself.
        return text, await self.prep.encode(text, "messages", add_special_tokens=False)

    def _logprobs(self, request: ChatCompletionRequest, token_ids: list[int],
                  entries: list[dict[int, Logprob]] | None) -> ChatChoiceLogprobs | None:
        if not request.logprobs:
            return None
        k, content = request.top_logprobs or 0, []
        for token_id, top in zip(token_ids, entries or []):
            ranked = sorted(top.items(), key=lambda kv: kv[1].rank or 0)
            alternatives = [self._top(t, lp) for t, lp in ranked[:k]]
            chosen = self._top(token_id, top[token_id])
            content.append(ChatTokenLogprob(**chosen.model_dump(), top_logprobs=alternatives))
        return ChatChoiceLogprobs(content=content)

    def _top(self, token_id: int, lp: Logprob) -> TopLogprob:
        token = lp.decoded_token if lp.decoded_token is not None else decode_token(
            self.tokenizer, token_id)
        return TopLogprob(token=token, logprob=lp.logprob, bytes=list(token.encode()))

    async def _stream(self, request: ChatCompletionRequest, request_id: str, created: int,
                      outputs: AsyncIterator, parser: ToolParser | None) -> AsyncIterator[str]:
        model = self.response_model(request.model)

        def chunk(choices: list[ChatStreamChoice], usage: UsageInfo | None = None) -> str:
            return sse(ChatCompletionChunk(id=request_id, created=created, choices=choices,
                                           model=model, usage=usage))

        text_chunk = ChatTextChunks(request_id, created, model)
        num_prompt_tokens = num_tokens = num_cached = 0
        choice_tokens: dict[int, int] = {}  # per choice index (continuous_usage_stats)
        tool_streams: dict[int, ToolCallStream] = {}
        reasoning_streams: dict[int, ReasoningStream] = {}
        try:
            role = DeltaMessage(role="assistant", content="")
            yield "".join(chunk([ChatStreamChoice(index=index, delta=role)])
                          for index in range(request.n))
            async for _, output in outputs:  # deltas: only choices with something new
                num_prompt_tokens = len(output.prompt_token_ids)
                num_cached = output.num_cached_tokens
                events = []  # sent in one write: each write passes every middleware
                for c in output.outputs:
                    num_tokens += len(c.token_ids)
                    usage = self.running_usage(request, choice_tokens, c.index,
                                               num_prompt_tokens, len(c.token_ids))
                    finished, text = c.finish_reason is not None, c.text
                    reasoning = calls = None
                    made_calls = False
                    if self.reasoning_parser is not None:  # the thinking apart from the answer
                        thinking = reasoning_streams.setdefault(
                            c.index, ReasoningStream(self.reasoning_parser()))
                        reasoning, text = thinking.feed(c.text, finished)
                    if parser is not None:  # content until the calls begin, then the calls
                        calls_stream = tool_streams.setdefault(c.index, ToolCallStream(parser))
                        text, calls = calls_stream.feed(text or "", finished)
                        made_calls = calls_stream.made_calls
                    if parser is not None or self.reasoning_parser is not None:
                        # The tokens' logprobs go with this delta, whatever part of their
                        # text is held back.
                        logprobs = self._logprobs(request, c.token_ids, c.logprobs)
                        if (text is not None or reasoning is not None or calls or finished
                                or (logprobs is not None and logprobs.content)):
                            events.append(chunk([ChatStreamChoice(
                                index=c.index, delta=DeltaMessage(
                                    content=text, reasoning_content=reasoning, tool_calls=calls),
                                logprobs=logprobs,
                                finish_reason=self._finish_reason(parser, made_calls,
                                                                  c.finish_reason),
                                stop_reason=c.stop_reason)], usage))
                        continue
                    if not request.logprobs:
                        events.append(text_chunk(c.index, c.text or None, c.finish_reason,
                                                 c.stop_reason, usage))
                        continue
                    events.append(chunk([ChatStreamChoice(
                        index=c.index, delta=DeltaMessage(content=c.text or None),
                        logprobs=self._logprobs(request, c.token_ids, c.logprobs),
                        finish_reason=c.finish_reason, stop_reason=c.stop_reason)], usage))
                if events:
                    yield "".join(events)
            if request.include_usage and num_prompt_tokens:
                yield chunk([], UsageInfo.of(num_prompt_tokens, num_tokens, num_cached))
        except Exception as exc:
            yield engine_error(exc).to_sse()
        yield SSE_DONE


def _plain_message(message: ChatMessage) -> dict:
    """The message as the chat template expects it: text content only."""
    plain = message.model_dump(exclude_none=True)
    content = message.content
    if isinstance(content, list):
        texts = []
        for part in content:
            if part.get("type") != "text":
                raise OpenAIError(400, f"content parts of type {part.get('type')!r} are not "
                                  "supported; only 'text'", param="messages")
            texts.append(str(part.get("text", "")))
        plain["content"] = "\n".join(texts)
    elif content is None:
        plain["content"] = ""
    return plain


def _usage(output: RequestOutput) -> UsageInfo:
    return UsageInfo.of(len(output.prompt_token_ids),
                        sum(len(c.token_ids) for c in output.outputs), output.num_cached_tokens)
