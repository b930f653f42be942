"""The parsers of models' own tool calls (tool_choice "auto"), and how a stream of an answer
sends its content until the calls begin and the calls whole at the end."""
import json

import pytest

from inference_engine.entrypoints.openai.tool_parsers import (HermesToolParser,
                                                              Llama3JsonToolParser,
                                                              ToolCallStream)


def calls_of(calls) -> list[tuple[str, dict]]:
    return [(c.function.name, json.loads(c.function.arguments)) for c in calls]


def test_hermes_calls_after_text():
    text = ('Let me look.\n<tool_call>\n{"name": "weather", "arguments": {"city": "Paris"}}\n'
            '</tool_call>\n<tool_call>{"name": "time", "arguments": "{\\"zone\\": \\"UTC\\"}"}'
            '</tool_call>')
    content, calls = HermesToolParser().parse(text)
    assert content == "Let me look."
    assert calls_of(calls) == [("weather", {"city": "Paris"}), ("time", {"zone": "UTC"})]
    assert HermesToolParser().parse("<tool_call>{\"name\": \"f\"}")[1][0].function.arguments == "{}"


@pytest.mark.parametrize("text", ["no calls here", "<tool_call>{not json}</tool_call>",
                                  '<tool_call>{"arguments": {}}</tool_call>'])
def test_hermes_text_without_well_formed_calls_stays_content(text):
    assert HermesToolParser().parse(text) == (text, [])


def test_llama3_json_calls():
    parser = Llama3JsonToolParser()
    text = ('<|python_tag|>{"name": "weather", "parameters": {"city": "Oslo"}}; '
            '{"name": "time", "parameters": {}}')
    assert parser.parse(text)[0] is None
    assert calls_of(parser.parse(text)[1]) == [("weather", {"city": "Oslo"}), ("time", {})]
    assert calls_of(parser.parse(' {"name": "f", "arguments": {"x": 1}}')[1]) == [("f", {"x": 1})]
    assert parser.parse("The answer is 4.") == ("The answer is 4.", [])
    assert parser.parse('{"name": 3}')[1] == []


def stream(parser, deltas: list[str]) -> tuple[list[str], list]:
    state, contents, calls = ToolCallStream(parser), [], None
    for i, delta in enumerate(deltas):
        content, calls = state.feed(delta, i == len(deltas) - 1)
        if content is not None:
            contents.append(content)
    return contents, calls


def test_a_stream_holds_back_what_may_begin_a_call():
    contents, calls = stream(HermesToolParser(), [
        "Let me ", "check.<to", "ol_call>{\"name\": \"f\", ", "\"arguments\": {\"a\": 1}}",
        "</tool_call>"])
    assert contents == ["Let me ", "check."]
    assert [(c.index, c.function.name) for c in calls] == [(0, "f")]


def test_a_stream_without_calls_sends_everything_held_back():
    contents, calls = stream(HermesToolParser(), ["Half a tag: <tool", "_cal"])
    assert "".join(contents) == "Half a tag: <tool_cal" and calls is None
    contents, calls = stream(Llama3JsonToolParser(), ["  ", "<|python", "_tag|>", " plain"])
    assert "".join(contents) == "  <|python_tag|> plain" and calls is None


def test_a_stream_of_llama3_calls_sends_no_content():
    contents, calls = stream(Llama3JsonToolParser(), [" {\"name\": \"f\", ", "\"parameters\": {}}"])
    assert contents == [] and calls_of(calls) == [("f", {})]


def test_required_calls_may_be_held_to_one():
    from inference_engine.entrypoints.openai.tool_calls import ChatTool, forced_tool_schema
    tools = [ChatTool(function={"name": "f"}), ChatTool(function={"name": "g"})]
    assert "maxItems" not in forced_tool_schema(tools, "required")
    assert forced_tool_schema(tools, "required", parallel=False)["maxItems"] == 1
    assert [c["properties"]["name"]["enum"] for c in
            forced_tool_schema(tools, "required")["items"]["anyOf"]] == [["f"], ["g"]]
