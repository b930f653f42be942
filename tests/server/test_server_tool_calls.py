"""Tool calls through the chat API: the tools reach the chat template; a named tool_choice or
"required" returns tool_calls whose arguments are JSON of the tools' parameters (structured
outputs keep even a small model to them), streamed piece by piece; unsupported choices answer
400."""
import json

import httpx
import openai
import pytest

from utils.tool_calls import merged_tool_calls

pytest.importorskip("xgrammar")

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 20},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {
        "zone": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["zone"],
        "additionalProperties": False}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
NAMED = {"type": "function", "function": {"name": "get_weather"}}


def test_a_named_tool_choice_returns_its_call(client, model):
    reply = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER, TIME],
                                           tool_choice=NAMED, temperature=0, max_tokens=60)
    message = reply.choices[0].message
    assert message.content is None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("chatcmpl-tool-")
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert set(arguments) == {"city", "unit"} and arguments["unit"] in ("celsius", "fahrenheit")
    assert reply.choices[0].finish_reason == "stop"


def test_required_returns_calls_of_the_given_tools(client, model):
    reply = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER, TIME],
                                           tool_choice="required", temperature=0, max_tokens=120)
    calls = reply.choices[0].message.tool_calls
    assert calls and all(c.function.name in ("get_weather", "get_time") for c in calls)
    for call in calls:
        assert isinstance(json.loads(call.function.arguments), dict)


def test_required_without_parallel_calls_makes_one(client, model):
    reply = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER, TIME],
                                           tool_choice="required", parallel_tool_calls=False,
                                           temperature=0, max_tokens=120)
    calls = reply.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name in ("get_weather", "get_time")


def test_a_streamed_named_call_streams_its_arguments(client, model):
    chunks = list(client.chat.completions.create(
        model=model, messages=ASK, tools=[WEATHER], tool_choice=NAMED, temperature=0,
        max_tokens=60, stream=True))
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    pieces = [call for d in deltas for call in d.tool_calls or []]
    assert len(pieces) > 3 and all(p.index == 0 for p in pieces)  # one call, in pieces
    first, rest = pieces[0], pieces[1:]
    assert first.id.startswith("chatcmpl-tool-") and first.function.name == "get_weather"
    assert all(p.id is None and p.function.name is None for p in rest)
    arguments = "".join(p.function.arguments for p in pieces)
    assert set(json.loads(arguments)) == {"city", "unit"}
    assert not any(d.content for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_a_streamed_required_call_streams_its_calls_as_they_grow(client, model):
    request = dict(model=model, messages=ASK, tools=[WEATHER, TIME], tool_choice="required",
                   temperature=0, max_tokens=120)
    chunks = list(client.chat.completions.create(stream=True, **request))
    pieces = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert len(pieces) > 3  # names first, then the arguments piece by piece
    whole = client.chat.completions.create(**request).choices[0].message.tool_calls
    assert merged_tool_calls(pieces) == [(c.function.name, json.loads(c.function.arguments))
                                         for c in whole]
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_tools_reach_the_chat_template_and_tool_turns_render(server, client, model):
    template = ("{% for t in tools or [] %}TOOL {{ t.function.name }}\n{% endfor %}"
                "{% for m in messages %}{{ m.role }}: {{ m.content }}"
                "{% for c in m.tool_calls or [] %} CALL {{ c.function.arguments.city }}"
                "{% endfor %}\n{% endfor %}assistant:")
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call-1", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call-1", "content": "21 degrees"}]
    tokens = httpx.post(server.url + "/tokenize", json={
        "messages": history, "chat_template": template}).json()["tokens"]
    text = httpx.post(server.url + "/detokenize", json={"tokens": tokens}).json()["prompt"]
    # The call's JSON-text arguments reached the template as an object.
    assert "CALL Paris" in text and "tool: 21 degrees" in text and "TOOL" not in text
    usage = {}
    for name, tools in (("without", None), ("with", [WEATHER, TIME])):
        reply = client.chat.completions.create(
            model=model, messages=history, max_tokens=1, extra_body={"chat_template": template},
            **({"tools": tools} if tools else {}))
        usage[name] = reply.usage.prompt_tokens
    assert usage["without"] == len(tokens)
    assert usage["with"] > usage["without"]  # the template wrote a line per tool


@pytest.mark.parametrize("body,message", [
    ({"tools": [WEATHER], "tool_choice": "auto"}, '"auto" tool choice needs the server started'),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "not among the tools"),
    ({"tool_choice": "required"}, "tool_choice needs tools"),
    ({"tools": [WEATHER], "tool_choice": NAMED, "guided_regex": "a"},
     "give one structured-output constraint"),
])
def test_unsupported_tool_choices_answer_400(server, body, message):
    reply = httpx.post(server.url + "/v1/chat/completions", timeout=60,
                       json={"messages": ASK, "max_tokens": 4, **body})
    assert reply.status_code == 400, reply.text
    assert message in reply.json()["error"]["message"]


# A server that lets the model call tools itself, in the hermes format. The small model never
# writes a call unprompted, so a regex makes it write one after some text: the server must find
# it there, as it would in a Qwen model's answer.
HERMES_ANSWER = ('Sure[.] <tool_call>[{]"name": "get_weather", "arguments": '
                 '[{]"city": "Paris", "unit": "celsius"[}][}]</tool_call>')


@pytest.fixture(scope="module")
def auto_client():
    from utils.server import SERVER_ARGS, ServerThread
    args = SERVER_ARGS + ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    with ServerThread(args) as running:
        yield openai.OpenAI(base_url=running.url + "/v1", api_key="unused", max_retries=0,
                            timeout=120)


@pytest.mark.parametrize("stream", [False, True])
def test_auto_finds_the_models_own_calls(auto_client, model, stream):
    reply = auto_client.chat.completions.create(
        model=model, messages=ASK, tools=[WEATHER], temperature=0, max_tokens=60, stream=stream,
        extra_body={"guided_regex": HERMES_ANSWER})  # no tool_choice: "auto" on this server
    if stream:
        chunks = [c.choices[0] for c in reply if c.choices]
        content = "".join(c.delta.content or "" for c in chunks)
        calls = merged_tool_calls([call for c in chunks for call in c.delta.tool_calls or []])
        finish = chunks[-1].finish_reason
    else:
        message = reply.choices[0].message
        content, finish = message.content, reply.choices[0].finish_reason
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls]
    assert content.strip() == "Sure." and finish == "tool_calls"
    assert calls == [("get_weather", {"city": "Paris", "unit": "celsius"})]
    plain = auto_client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER],
                                                tool_choice="none", max_tokens=8)
    assert plain.choices[0].message.tool_calls == []


def test_a_stream_with_a_tool_parser_sends_every_tokens_logprobs(auto_client, model):
    chunks = [c for c in auto_client.chat.completions.create(
        model=model, messages=ASK, tools=[WEATHER], temperature=0, max_tokens=60, stream=True,
        logprobs=True, top_logprobs=2, stream_options={"include_usage": True},
        extra_body={"guided_regex": HERMES_ANSWER})]
    entries = [e for c in chunks if c.choices and c.choices[0].logprobs
               for e in c.choices[0].logprobs.content]
    assert len(entries) == chunks[-1].usage.completion_tokens  # held-back text's tokens too
    assert all(len(e.top_logprobs) == 2 for e in entries)
    assert "".join(e.token for e in entries).startswith("Sure. <tool_call>")


def test_auto_tool_choice_needs_a_parser():
    from inference_engine.entrypoints.openai.api_server import build_app
    from inference_engine.entrypoints.openai.cli_args import make_arg_parser
    args = make_arg_parser().parse_args(["--enable-auto-tool-choice"])
    with pytest.raises(ValueError, match="needs --tool-call-parser"):
        build_app(args)
