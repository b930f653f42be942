"""The templated text chunks are the models' JSON, byte for byte."""
import pytest

from inference_engine.entrypoints.openai.protocol import (ChatCompletionChunk, ChatStreamChoice,
                                                          CompletionChoice, CompletionChunk,
                                                          DeltaMessage, UsageInfo)
from inference_engine.entrypoints.openai.response_streams import sse
from inference_engine.entrypoints.openai.text_chunks import ChatTextChunks, CompletionTextChunks

ID, MODEL = 'cmpl-"quoted" \\ id', "modèle/名前"
TEXTS = ["", "plain", 'quote " backslash \\ slash /', "\n\t\r\b\f \x00\x1f\x7f \u2028\u2029",
         "é 日本語 😀", "\ufffd"]
ENDINGS = [(None, None), ("stop", "</s>"), ("stop", 128001), ("length", None), ("abort", None)]
USAGE = UsageInfo(prompt_tokens=7, completion_tokens=3, total_tokens=10)


@pytest.mark.parametrize("finish_reason, stop_reason", ENDINGS)
def test_completion_chunks(finish_reason, stop_reason):
    chunks = CompletionTextChunks(ID, 1700000000, MODEL)
    for index, text in enumerate(TEXTS):
        expected = sse(CompletionChunk(id=ID, created=1700000000, model=MODEL, choices=[
            CompletionChoice(index=index, text=text, finish_reason=finish_reason,
                             stop_reason=stop_reason)]))
        assert chunks(index, text, finish_reason, stop_reason) == expected
        with_usage = sse(CompletionChunk(id=ID, created=1700000000, model=MODEL, usage=USAGE,
                                         choices=[CompletionChoice(
                                             index=index, text=text, finish_reason=finish_reason,
                                             stop_reason=stop_reason)]))
        assert chunks(index, text, finish_reason, stop_reason, USAGE) == with_usage


@pytest.mark.parametrize("finish_reason, stop_reason", ENDINGS)
def test_chat_chunks(finish_reason, stop_reason):
    chunks = ChatTextChunks(ID, 1700000000, MODEL)
    for index, text in enumerate(TEXTS):
        content = text or None
        expected = sse(ChatCompletionChunk(id=ID, created=1700000000, model=MODEL, choices=[
            ChatStreamChoice(index=index, delta=DeltaMessage(content=content),
                             finish_reason=finish_reason, stop_reason=stop_reason)]))
        assert chunks(index, content, finish_reason, stop_reason) == expected
        with_usage = sse(ChatCompletionChunk(
            id=ID, created=1700000000, model=MODEL, usage=USAGE, choices=[ChatStreamChoice(
                index=index, delta=DeltaMessage(content=content),
                finish_reason=finish_reason, stop_reason=stop_reason)]))
        assert chunks(index, content, finish_reason, stop_reason, USAGE) == with_usage
