"""POST /v1/responses (OpenAI's Responses API) through the official client: the answer of the
chat endpoint for the same conversation (instructions as the system message), streamed as the
API's events, text.format for JSON, function tools (a forced call, a call's output sent
back), and what a stateless server can't do refused."""
import json

import openai
import pytest

GREEDY = {"temperature": 0.0, "max_output_tokens": 12}


def chat_answer(client, model, messages):
    reply = client.chat.completions.create(model=model, messages=messages, temperature=0.0,
                                           max_tokens=12)
    return reply.choices[0].message.content, reply.usage


def test_text_input_answers_as_chat_does(client, model):
    response = client.responses.create(model=model, input="Name a primary colour.", **GREEDY)
    text, usage = chat_answer(client, model, [{"role": "user",
                                               "content": "Name a primary colour."}])
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.output_text == text
    assert response.output[0].role == "assistant"
    assert response.usage.input_tokens == usage.prompt_tokens
    assert response.usage.output_tokens == usage.completion_tokens
    assert response.status in ("completed", "incomplete")
    if response.status == "incomplete":
        assert response.incomplete_details.reason == "max_output_tokens"


def test_instructions_and_messages(client, model):
    response = client.responses.create(
        model=model, instructions="Answer in French.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Say hello."}]}],
        **GREEDY)
    text, _ = chat_answer(client, model, [{"role": "system", "content": "Answer in French."},
                                          {"role": "user", "content": "Say hello."}])
    assert response.output_text == text


def test_streamed_events(client, model):
    events = list(client.responses.create(model=model, input="Count to five.", stream=True,
                                          **GREEDY))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert kinds[-1] in ("response.completed", "response.incomplete")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text
    assert deltas == client.responses.create(model=model, input="Count to five.",
                                             **GREEDY).output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_json_schema_format(client, model):
    schema = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 10}},
              "required": ["colour"], "additionalProperties": False}
    response = client.responses.create(
        model=model, input="Give a colour as JSON.", temperature=0.0, max_output_tokens=40,
        text={"format": {"type": "json_schema", "name": "colour", "schema": schema}})
    assert set(json.loads(response.output_text)) == {"colour"}


def test_previous_response_id_is_refused(client, model):
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(model=model, input="Hi", previous_response_id="resp_123")
    assert error.value.body["param"] == "previous_response_id"


WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string",
                                                                     "maxLength": 20}},
                          "required": ["city"], "additionalProperties": False}}
FORCED = {"type": "function", "name": "get_weather"}


def test_a_forced_function_call(client, model):
    response = client.responses.create(model=model, input="What is the weather in Paris?",
                                       tools=[WEATHER], tool_choice=FORCED, temperature=0.0,
                                       max_output_tokens=40)
    calls = [item for item in response.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert set(json.loads(calls[0].arguments)) == {"city"}
    assert calls[0].call_id and calls[0].id.startswith("fc_")

    streamed = list(client.responses.create(model=model, input="What is the weather in Paris?",
                                            tools=[WEATHER], tool_choice=FORCED,
                                            temperature=0.0, max_output_tokens=40, stream=True))
    done = [e for e in streamed if e.type == "response.function_call_arguments.done"]
    assert [e.arguments for e in done] == [calls[0].arguments]
    final = streamed[-1].response.output
    assert [item.type for item in final] == ["function_call"]


def test_a_function_calls_output_goes_back_to_the_model(client, model):
    response = client.responses.create(model=model, temperature=0.0, max_output_tokens=12,
                                       tools=[WEATHER], tool_choice="none", input=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "Sunny, 21 C"}])
    assert response.output[0].type == "message" and response.output_text


def test_what_a_stateless_server_cant_take_is_refused(client, model):
    for extra, param in [({"tools": [{"type": "web_search"}]}, "input"),
                         ({"input": [{"type": "reasoning", "summary": []}]}, "input")]:
        with pytest.raises(openai.BadRequestError) as error:
            client.responses.create(model=model, **({"input": "Hi"} | extra))
        assert error.value.body["param"] == param
