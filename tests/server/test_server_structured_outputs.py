"""Structured outputs through the OpenAI API: response_format (json_object, json_schema) and
vLLM's structured_outputs / guided_* extras, streamed or not; bad constraints answer 400 before
any stream starts."""
import json
import re

import httpx
import openai
import pytest

pytest.importorskip("xgrammar")

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                           "is_capital": {"type": "boolean"}},
          "required": ["city", "is_capital"], "additionalProperties": False}
GREEDY = {"temperature": 0.0, "max_tokens": 60}


def test_chat_response_format_json_schema(client, model):
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Describe Paris as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}},
        **GREEDY)
    city = json.loads(reply.choices[0].message.content)
    assert set(city) == {"city", "is_capital"} and isinstance(city["is_capital"], bool)
    assert reply.choices[0].finish_reason == "stop"


def test_completion_choice_and_streamed_regex(client, model):
    reply = client.completions.create(model=model, prompt="The best color is", n=2,
                                      extra_body={"guided_choice": ["red", "green", "blue"]},
                                      **GREEDY)
    assert all(c.text in ("red", "green", "blue") for c in reply.choices)
    chunks = client.completions.create(
        model=model, prompt="Order number:", stream=True,
        extra_body={"structured_outputs": {"regex": r"[A-Z]{2}-[0-9]{4}"}}, **GREEDY)
    text = "".join(c.choices[0].text for c in chunks)
    assert re.fullmatch(r"[A-Z]{2}-[0-9]{4}", text)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("body,param", [
    ({"response_format": {"type": "json_schema",
                          "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
     "structured_outputs"),
    ({"guided_regex": "[a-", "guided_choice": ["a"]}, "guided_regex"),
    ({"guided_regex": "([a-z]"}, "structured_outputs"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
])
def test_bad_constraints_answer_400(server, body, param, stream):
    reply = httpx.post(server.url + "/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": stream,
        **body})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


def test_the_openai_client_sees_a_bad_request(client, model):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}],
                                       extra_body={"guided_json": "{oops"}, **GREEDY)
