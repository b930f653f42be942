"""POST /v1/responses: OpenAI's Responses API over the chat path (the same template,
sampling and structured outputs), answered as one output message, whole or as the API's
stream of events (response.created, response.output_text.delta, ..., response.completed)."""
import json
import logging

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from inference_engine.entrypoints.openai.protocol_responses import (ResponsesRequest,
                                                                    message_item, new_id,
                                                                    response_body, usage_body)
from inference_engine.entrypoints.openai.response_streams import (collect_final_outputs,
                                                                  merge_async_iterators)
from inference_engine.entrypoints.openai.serving_chat import OpenAIServingChat
from inference_engine.entrypoints.openai.serving_engine import OpenAIError, engine_error
from inference_engine.outputs import RequestOutputKind

logger = logging.getLogger(__name__)


class OpenAIServingResponses(OpenAIServingChat):
    async def create_response(self, request: ResponsesRequest, raw_request: Request) -> Response:
        if request.previous_response_id is not None:
            raise OpenAIError(400, "previous_response_id needs stored responses, which this "
                              "server does not keep: send the conversation as input",
                              param="previous_response_id")
        if request.tools:
            raise OpenAIError(400, "tools are not supported on /v1/responses yet: use "
                              "/v1/chat/completions", param="tools")
        chat = request.to_chat_request()
        lora = self.check_model(chat.model)
        self.check_engine()
        response_id = new_id("resp")
        prompt, prompt_ids = self.render_chat(chat.messages, None, True, False)
        params = self.sampling_params(
            chat, self.max_tokens_for(len(prompt_ids), chat.max_tokens, "input"), None)
        logger.info("%s: %d input tokens, max_output_tokens=%d, stream=%s", response_id,
                    len(prompt_ids), params.max_tokens, request.stream)
        kind = RequestOutputKind.DELTA if request.stream else RequestOutputKind.FINAL_ONLY
        outputs = merge_async_iterators(
            self.generate(chat, response_id, (prompt, prompt_ids), params, kind, lora))
        model = self.response_model(chat.model)
        if request.stream:
            return StreamingResponse(self._events(request, response_id, model, outputs),
                                     media_type="text/event-stream")
        final = await collect_final_outputs(outputs, raw_request)
        if final is None:
            return Response(status_code=499)  # nobody is listening any more
        output, completion = final[0], final[0].outputs[0]
        _, text = self._split_reasoning(completion.text)
        status, reason = self._status(completion.finish_reason)
        return JSONResponse(response_body(
            request, response_id, model, status, [message_item(new_id("msg"), text, status)],
            usage_body(len(output.prompt_token_ids), len(completion.token_ids)), reason))

    def _split_reasoning(self, text: str) -> tuple[str | None, str]:
        if self.reasoning_parser is None:
            return None, text
        reasoning, answer = self.reasoning_parser().split(text)
        return reasoning, answer or ""

    @staticmethod
    def _status(finish_reason: str | None) -> tuple[str, str | None]:
        if finish_reason == "length":
            return "incomplete", "max_output_tokens"
        return "completed", None

    async def _events(self, request: ResponsesRequest, response_id: str, model: str, outputs):
        """The Responses stream: the response created, the message and its text part opened,
        the text's deltas, everything closed, the response completed (with usage)."""
        number = 0

        def event(kind: str, **fields) -> str:
            nonlocal number
            number += 1
            body = {"type": kind, "sequence_number": number - 1, **fields}
            return f"event: {kind}\ndata: {json.dumps(body)}\n\n"

        message_id = new_id("msg")
        begun = response_body(request, response_id, model, "in_progress", [], None)
        yield event("response.created", response=begun)
        yield event("response.in_progress", response=begun)
        yield event("response.output_item.added", output_index=0,
                    item=message_item(message_id, "", "in_progress") | {"content": []})
        part = {"type": "output_text", "text": "", "annotations": []}
        yield event("response.content_part.added", item_id=message_id, output_index=0,
                    content_index=0, part=part)
        text, num_tokens, num_prompt, finish_reason = "", 0, 0, None
        try:
            async for _, output in outputs:
                num_prompt = len(output.prompt_token_ids)
                for c in output.outputs:
                    num_tokens += len(c.token_ids)
                    finish_reason = c.finish_reason or finish_reason
                    if c.text and self.reasoning_parser is None:
                        text += c.text
                        yield event("response.output_text.delta", item_id=message_id,
                                    output_index=0, content_index=0, delta=c.text)
                    elif c.text:
                        text += c.text  # the answer is known only at the end: sent then
        except Exception as exc:  # noqa: BLE001 - the stream reports it in OpenAI's shape
            yield event("error", message=engine_error(exc).info.message)
            return
        if self.reasoning_parser is not None:
            _, text = self._split_reasoning(text)
            if text:
                yield event("response.output_text.delta", item_id=message_id, output_index=0,
                            content_index=0, delta=text)
        status, reason = self._status(finish_reason)
        yield event("response.output_text.done", item_id=message_id, output_index=0,
                    content_index=0, text=text)
        yield event("response.content_part.done", item_id=message_id, output_index=0,
                    content_index=0, part=part | {"text": text})
        item = message_item(message_id, text, status)
        yield event("response.output_item.done", output_index=0, item=item)
        done = response_body(request, response_id, model, status, [item],
                             usage_body(num_prompt, num_tokens), reason)
        yield event("response.completed" if status == "completed" else "response.incomplete",
                    response=done)
