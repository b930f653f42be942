"""Streamed chunks that carry text only, serialized without a pydantic model per chunk.

A streaming request sends a chunk per step and choice. Building a CompletionChunk (or a
ChatCompletionChunk) and dumping it costs tens of microseconds, paid for every token of every
stream on the event loop, whose GIL the engine thread needs too. Most chunks carry nothing but
text and a finish reason, and all of a request's chunks share their JSON up to the choice, so
that prefix is serialized once by the model itself and each chunk adds a few fields. The JSON is
the same, byte for byte, as the model's (tests/server/test_text_chunks.py); chunks with
log-probabilities, the role or usage still go through the models.
"""
from json.encoder import encode_basestring

from inference_engine.entrypoints.openai.protocol import (ChatCompletionChunk, CompletionChunk,
                                                          UsageInfo)


def _dumps(value: str | int | None) -> str:
    """JSON of a string, an int or None as pydantic writes it (non-ASCII characters as they
    are). By hand: json.dumps sets up a whole encoder for each value that is not a string."""
    if value is None:
        return "null"
    return encode_basestring(value) if isinstance(value, str) else str(int(value))

_TAIL = '[],"usage":null}'  # what ends an empty chunk's JSON: no choices, no usage


def _usage(usage: UsageInfo | None) -> str:
    return "null" if usage is None else usage.model_dump_json()


def _prefix(empty_chunk) -> str:
    """`data: ` and the chunk's JSON up to its first choice."""
    head = empty_chunk.model_dump_json()
    if not head.endswith('"choices":' + _TAIL):
        raise RuntimeError(f"unexpected chunk layout: {head}")  # the models' fields moved
    return "data: " + head[:-len(_TAIL)] + "["


class CompletionTextChunks:
    """The SSE events of one streamed completion whose choices carry no log-probabilities."""

    def __init__(self, request_id: str, created: int, model: str):
        self._prefix = _prefix(CompletionChunk(id=request_id, created=created, model=model,
                                               choices=[]))

    def __call__(self, index: int, text: str, finish_reason: str | None,
                 stop_reason: int | str | None, usage: UsageInfo | None = None) -> str:
        return (f'{self._prefix}{{"index":{index},"text":{_dumps(text)},"logprobs":null,'
                f'"finish_reason":{_dumps(finish_reason)},"stop_reason":{_dumps(stop_reason)}'
                f'}}],"usage":{_usage(usage)}}}\n\n')


class ChatTextChunks:
    """The SSE events of one streamed chat completion carrying content deltas (no role, no
    log-probabilities); empty content leaves the delta empty, as DeltaMessage does."""

    def __init__(self, request_id: str, created: int, model: str):
        self._prefix = _prefix(ChatCompletionChunk(id=request_id, created=created, model=model,
                                                   choices=[]))

    def __call__(self, index: int, content: str | None, finish_reason: str | None,
                 stop_reason: int | str | None, usage: UsageInfo | None = None) -> str:
        delta = f'{{"content":{_dumps(content)}}}' if content is not None else "{}"
        return (f'{self._prefix}{{"index":{index},"delta":{delta},"logprobs":null,'
                f'"finish_reason":{_dumps(finish_reason)},"stop_reason":{_dumps(stop_reason)}'
                f'}}],"usage":{_usage(usage)}}}\n\n')
