"""The parsers of models' own tool calls (tool_choice "auto"), and how a stream of an answer
sends its content until the calls begin, then each call's name and its arguments as they grow."""
import json
import random

import pytest

from inference_engine.entrypoints.openai.tool_call_stream import ToolCallStream
from inference_engine.entrypoints.openai.tool_calls import ChatTool
from inference_engine.entrypoints.openai.tool_parsers import (ForcedToolParser, HermesToolParser,
                                                              Llama3JsonToolParser)
from utils.tool_calls import merged_tool_calls


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
    """The content pieces, and every call piece sent (in order)."""
    state, contents, pieces = ToolCallStream(parser), [], []
    for i, delta in enumerate(deltas):
        content, calls = state.feed(delta, i == len(deltas) - 1)
        if content is not None:
            contents.append(content)
        pieces += calls or []
    return contents, pieces


def by_character(text: str) -> list[str]:
    return list(text)


def test_a_stream_holds_back_what_may_begin_a_call():
    contents, pieces = stream(HermesToolParser(), [
        "Let me ", "check.<to", "ol_call>{\"name\": \"f\", ", "\"arguments\": {\"a\": 1}}",
        "</tool_call>"])
    assert contents == ["Let me", " check."]  # a blank waits for what follows it
    assert merged_tool_calls(pieces) == [("f", {"a": 1})]


def test_a_stream_without_calls_sends_everything_held_back():
    contents, pieces = stream(HermesToolParser(), ["Half a tag: <tool", "_cal"])
    assert "".join(contents) == "Half a tag: <tool_cal" and pieces == []
    contents, pieces = stream(Llama3JsonToolParser(), ["  ", "<|python", "_tag|>", " plain"])
    assert "".join(contents) == "  <|python_tag|> plain" and pieces == []


def test_a_stream_of_llama3_calls_sends_no_content():
    contents, pieces = stream(Llama3JsonToolParser(),
                              [" {\"name\": \"f\", ", "\"parameters\": {}}"])
    assert contents == [] and merged_tool_calls(pieces) == [("f", {})]


HERMES_TWO = ('Checking both.\n<tool_call>\n{"name": "weather", "arguments": {"city": "Paris",'
              ' "days": [1, 2], "note": "a } and a \\" inside"}}\n</tool_call>\n<tool_call>\n'
              '{"name": "time", "arguments": {}}\n</tool_call>')


def test_a_streamed_call_sends_its_name_first_then_its_arguments_as_they_grow():
    deltas = by_character(HERMES_TWO)
    contents, pieces = stream(HermesToolParser(), deltas)
    assert "".join(contents) == "Checking both."
    assert merged_tool_calls(pieces) == [("weather", {"city": "Paris", "days": [1, 2],
                                           "note": 'a } and a " inside'}),
                              ("time", {})]
    assert sum(p.index == 0 for p in pieces) > 10  # piece by piece, not whole at the end
    # The name went out as soon as it was complete, long before the call's end.
    state, first_named = ToolCallStream(HermesToolParser()), None
    for i, delta in enumerate(deltas):
        _, calls = state.feed(delta, False)
        if calls and first_named is None:
            first_named = i
    assert first_named == HERMES_TWO.index('"weather"') + len('"weather"') - 1


@pytest.mark.parametrize("seed", range(5))
def test_any_split_of_the_text_streams_the_parsed_calls(seed):
    rng = random.Random(seed)
    cases = [(HermesToolParser(), HERMES_TWO),
             (Llama3JsonToolParser(), '<|python_tag|>{"name": "f", "parameters": {"x": "[;]"}};'
                                      ' {"name": "g", "parameters": {"y": {"z": null}}}'),
             (HermesToolParser(), '<tool_call>{"name": "s", "arguments": "{\\"q\\": 1}"}'
                                  '</tool_call>'),
             (HermesToolParser(), '<tool_call>{"arguments": {"k": true}, "name": "late"}'
                                  '</tool_call>'),
             (HermesToolParser(), '<tool_call>{"name": "bare"}</tool_call>')]
    for parser, text in cases:
        cuts = sorted(rng.sample(range(1, len(text)), 8))
        deltas = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
        _, pieces = stream(parser, deltas)
        expected = [(c.function.name, json.loads(c.function.arguments))
                    for c in parser.parse(text)[1]]
        assert merged_tool_calls(pieces) == expected and expected


def test_a_required_answer_streams_each_call_of_its_array():
    tools = [ChatTool(function={"name": "f"}), ChatTool(function={"name": "g"})]
    text = '[{"name": "f", "parameters": {"a": [1, 2]}}, {"name": "g", "parameters": {}}]'
    contents, pieces = stream(ForcedToolParser(tools, "required"), by_character(text))
    assert contents == [] and merged_tool_calls(pieces) == [("f", {"a": [1, 2]}), ("g", {})]


def test_a_call_cut_short_stays_as_far_as_it_was_sent():
    text = '<tool_call>{"name": "f", "arguments": {"a": "unfinish'
    contents, pieces = stream(HermesToolParser(), by_character(text))
    assert contents == []
    assert pieces[0].function.name == "f"
    assert "".join(p.function.arguments or "" for p in pieces) == '{"a": "unfinish'


def test_required_calls_may_be_held_to_one():
    from inference_engine.entrypoints.openai.tool_calls import ChatTool, forced_tool_schema
    tools = [ChatTool(function={"name": "f"}), ChatTool(function={"name": "g"})]
    assert "maxItems" not in forced_tool_schema(tools, "required")
    assert forced_tool_schema(tools, "required", parallel=False)["maxItems"] == 1
    assert [c["properties"]["name"]["enum"] for c in
            forced_tool_schema(tools, "required")["items"]["anyOf"]] == [["f"], ["g"]]
