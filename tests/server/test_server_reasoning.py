"""A server with --reasoning-parser qwen3 (and the hermes tool parser): the thinking comes back
as reasoning_content, the answer as content, calls after the thinking as tool_calls; streamed
alike. The small model does not think by itself, so a regex makes it write a reasoning model's
answer. On /v1/responses the thinking is a reasoning item before the message."""
import json

import openai
import pytest

from utils.server import SERVER_ARGS, ServerThread
from utils.tool_calls import merged_tool_calls

pytest.importorskip("xgrammar")
ASK = [{"role": "user", "content": "What is 2 + 2?"}]
THOUGHT = "<think>Two and two[.]</think>It is four[.]"
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALL = ('<think>I need the weather[.]</think><tool_call>[{]"name": "get_weather", '
        '"arguments": [{]"city": "Oslo"[}][}]</tool_call>')


@pytest.fixture(scope="module")
def thinking_client():
    args = SERVER_ARGS + ["--reasoning-parser", "qwen3", "--enable-auto-tool-choice",
                          "--tool-call-parser", "hermes"]
    with ServerThread(args) as running:
        yield openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0,
                            timeout=120)


def ask(client, model, stream: bool, regex: str, **kwargs):
    reply = client.chat.completions.create(model=model, messages=ASK, temperature=0,
                                           max_tokens=120, stream=stream,
                                           extra_body={"guided_regex": regex}, **kwargs)
    if not stream:
        message = reply.choices[0].message
        calls = [(c.function.name, json.loads(c.function.arguments))
                 for c in message.tool_calls or []]
        return (message.model_extra.get("reasoning_content"), message.content, calls,
                reply.choices[0].finish_reason)
    deltas, finish = [], None
    for chunk in reply:
        if chunk.choices:
            deltas.append(chunk.choices[0].delta)
            finish = chunk.choices[0].finish_reason or finish
    reasoning = "".join(d.model_extra.get("reasoning_content") or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    calls = merged_tool_calls([call for d in deltas for call in d.tool_calls or []])
    return reasoning or None, content or None, calls, finish


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_apart_from_the_answer(thinking_client, model, stream):
    reasoning, content, calls, finish = ask(thinking_client, model, stream, THOUGHT)
    assert (reasoning, content, finish) == ("Two and two.", "It is four.", "stop")
    assert not calls


@pytest.mark.parametrize("stream", [False, True])
def test_calls_after_the_thinking(thinking_client, model, stream):
    reasoning, content, calls, finish = ask(thinking_client, model, stream, CALL, tools=[WEATHER])
    assert reasoning == "I need the weather." and not content and finish == "tool_calls"
    assert calls == [("get_weather", {"city": "Oslo"})]


def test_a_thinking_stream_sends_every_tokens_logprobs(thinking_client, model):
    chunks = list(thinking_client.chat.completions.create(
        model=model, messages=ASK, temperature=0, max_tokens=120, stream=True, logprobs=True,
        stream_options={"include_usage": True}, extra_body={"guided_regex": THOUGHT}))
    tokens = [e.token for c in chunks if c.choices and c.choices[0].logprobs
              for e in c.choices[0].logprobs.content]
    assert len(tokens) == chunks[-1].usage.completion_tokens
    assert "".join(tokens).startswith("<think>Two and two.</think>It is four.")


@pytest.mark.parametrize("stream", [False, True])
def test_responses_put_the_thinking_in_a_reasoning_item(thinking_client, model, stream):
    kwargs = {"model": model, "input": "What is 2 + 2?", "temperature": 0,
              "max_output_tokens": 120, "extra_body": {"structured_outputs": {"regex": THOUGHT}}}
    if stream:
        events = list(thinking_client.responses.create(stream=True, **kwargs))
        response = events[-1].response
        assert [e.type for e in events if e.type == "response.output_item.done"] == [
            "response.output_item.done"] * 2
    else:
        response = thinking_client.responses.create(**kwargs)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert response.output[0].content[0].text == "Two and two."
    assert response.output_text == "It is four."
