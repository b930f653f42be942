"""POST /v1/responses: OpenAI's Responses API over the chat path (the same template,
sampling, structured outputs and tool calls), answered as output items (a message, function
calls), whole or as the API's stream of events (response.created, ..., response.completed)."""
import json
import logging

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from inference_engine.entrypoints.openai.protocol_responses import (ResponsesRequest,
                                                                    function_call_item,
                                                                    message_item, new_id,
                                                                    reasoning_item,
                                                                    response_body, usage_body)
from inference_engine.entrypoints.openai.response_streams import (collect_final_outputs,
                                                                  merge_async_iterators,
                                                                  started_stream)
from inference_engine.entrypoints.openai.serving_chat import OpenAIServingChat
from inference_engine.entrypoints.openai.errors import OpenAIError, engine_error
from inference_engine.outputs import RequestOutputKind

logger = logging.getLogger(__name__)


class OpenAIServingResponses(OpenAIServingChat):
    prompt_field = "input"

    async def create_response(self, request: ResponsesRequest, raw_request: Request) -> Response:
        if request.previous_response_id is not None:
            raise OpenAIError(400, "previous_response_id needs stored responses, which this "
                              "server does not keep: send the conversation as input",
                              param="previous_response_id")
        try:
            chat = request.to_chat_request()
        except (ValueError, KeyError) as exc:
            raise OpenAIError(400, f"bad input: {exc}", param="input") from exc
        lora = self.check_model(chat.model)
        self.check_engine()
        response_id = new_id("resp")
        prompt, prompt_ids = await self.render_request(chat)
        params = self.sampling_params(
            chat, self.max_tokens_for(len(prompt_ids), chat.max_tokens, "input"), None)
        parser = self._tool_parser(chat)
        logger.info("%s: %d input tokens, max_output_tokens=%d, stream=%s", response_id,
                    len(prompt_ids), params.max_tokens, request.stream)
        kind = RequestOutputKind.DELTA if request.stream else RequestOutputKind.FINAL_ONLY
        self.check_engine()
        outputs = merge_async_iterators(
            self.generate(chat, response_id, (prompt, prompt_ids), params, kind, lora))
        model = self.response_model(chat.model)
        if request.stream:
            outputs = await started_stream(outputs, raw_request)
            if outputs is None:
                return Response(status_code=499)  # nobody is listening any more
            return StreamingResponse(self._events(request, response_id, model, outputs, parser),
                                     media_type="text/event-stream")
        final = await collect_final_outputs(outputs, raw_request)
        if final is None:
            return Response(status_code=499)  # nobody is listening any more
        output, completion = final[0], final[0].outputs[0]
        status, reason = self._status(completion.finish_reason)
        items = self._output_items(completion.text, parser, new_id("msg"), status)
        return JSONResponse(response_body(
            request, response_id, model, status, items,
            usage_body(len(output.prompt_token_ids), len(completion.token_ids),
                       output.num_cached_tokens), reason))

    def _output_items(self, text: str, parser, message_id: str, status: str) -> list[dict]:
        """A reasoning model's thinking as a reasoning item, the answer's text as a message
        item (none when the model only called tools), then its function calls."""
        items = []
        if self.reasoning_parser is not None:
            reasoning, text = self.reasoning_parser().split(text)
            items += [reasoning_item(reasoning)] if reasoning else []
        content, calls = parser.parse(text or "") if parser is not None else (text or "", [])
        if content or not calls:
            items.append(message_item(message_id, content or "", status))
        return items + [function_call_item(call) for call in calls]

    @staticmethod
    def _status(finish_reason: str | None) -> tuple[str, str | None]:
        if finish_reason == "length":
            return "incomplete", "max_output_tokens"
        return "completed", None

    async def _events(self, request: ResponsesRequest, response_id: str, model: str, outputs,
                      parser):
        """The Responses stream. Plain text streams as it comes; with tools or a reasoning
        parser the items are known only at the end, and are sent then, whole."""
        number = 0

        def event(kind: str, **fields) -> str:
            nonlocal number
            number += 1
            body = {"type": kind, "sequence_number": number - 1, **fields}
            return f"event: {kind}\ndata: {json.dumps(body)}\n\n"

        live = parser is None and self.reasoning_parser is None
        message_id = new_id("msg")
        begun = response_body(request, response_id, model, "in_progress", [], None)
        yield event("response.created", response=begun)
        yield event("response.in_progress", response=begun)
        if live:
            for piece in _open_message(event, message_id, 0):
                yield piece
        text, num_tokens, num_prompt, num_cached, finish_reason = "", 0, 0, 0, None
        try:
            async for _, output in outputs:
                num_prompt, num_cached = len(output.prompt_token_ids), output.num_cached_tokens
                for c in output.outputs:
                    num_tokens += len(c.token_ids)
                    finish_reason = c.finish_reason or finish_reason
                    text += c.text
                    if c.text and live:
                        yield event("response.output_text.delta", item_id=message_id,
                                    output_index=0, content_index=0, delta=c.text)
        except Exception as exc:  # noqa: BLE001 - the stream reports it in OpenAI's shape
            yield event("error", message=engine_error(exc).info.message)
            return
        status, reason = self._status(finish_reason)
        items = self._output_items(text, parser, message_id, status)
        for index, item in enumerate(items):
            if not live or index > 0:
                for piece in _open_item(event, item, index):
                    yield piece
            for piece in _close_item(event, item, index):
                yield piece
        done = response_body(request, response_id, model, status, items,
                             usage_body(num_prompt, num_tokens, num_cached), reason)
        yield event("response.completed" if status == "completed" else "response.incomplete",
                    response=done)


def _open_message(event, message_id: str, index: int):
    item = message_item(message_id, "", "in_progress") | {"content": []}
    yield event("response.output_item.added", output_index=index, item=item)
    yield event("response.content_part.added", item_id=message_id, output_index=index,
                content_index=0, part={"type": "output_text", "text": "", "annotations": []})


def _open_item(event, item: dict, index: int):
    """An item sent whole: opened, then its content as one delta."""
    if item["type"] == "message":
        yield from _open_message(event, item["id"], index)
        yield event("response.output_text.delta", item_id=item["id"], output_index=index,
                    content_index=0, delta=item["content"][0]["text"])
        return
    if item["type"] == "reasoning":
        yield event("response.output_item.added", output_index=index, item=item)
        return
    yield event("response.output_item.added", output_index=index,
                item=item | {"arguments": "", "status": "in_progress"})
    yield event("response.function_call_arguments.delta", item_id=item["id"],
                output_index=index, delta=item["arguments"])


def _close_item(event, item: dict, index: int):
    if item["type"] == "message":
        part = item["content"][0]
        yield event("response.output_text.done", item_id=item["id"], output_index=index,
                    content_index=0, text=part["text"])
        yield event("response.content_part.done", item_id=item["id"], output_index=index,
                    content_index=0, part=part)
    elif item["type"] == "function_call":
        yield event("response.function_call_arguments.done", item_id=item["id"],
                    output_index=index, arguments=item["arguments"])
    yield event("response.output_item.done", output_index=index, item=item)
