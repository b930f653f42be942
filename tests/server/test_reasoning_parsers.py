"""The thinking of reasoning models apart from their answers: whole, and streamed with the marks
split across deltas (text that may still become a mark is held back)."""
import pytest

from inference_engine.entrypoints.openai.reasoning import REASONING_PARSERS, ReasoningStream


@pytest.mark.parametrize("name,text,expected", [
    ("qwen3", "<think>Let me see.</think>It is 4.", ("Let me see.", "It is 4.")),
    ("qwen3", "It is 4.", (None, "It is 4.")),  # thinking off
    ("qwen3", "<think>Still thinking", ("Still thinking", None)),  # cut by max_tokens
    ("qwen3", "<think></think>\n\nIt is 4.", (None, "\n\nIt is 4.")),
    ("deepseek_r1", "Let me see.</think>It is 4.", ("Let me see.", "It is 4.")),
    ("deepseek_r1", "<think>Let me see.</think>It is 4.", ("Let me see.", "It is 4.")),
    ("deepseek_r1", "Still thinking", ("Still thinking", None)),
])
def test_whole_answers(name, text, expected):
    assert REASONING_PARSERS[name]().split(text) == expected


def stream(name: str, deltas: list[str]) -> tuple[list[str], list[str]]:
    state, reasoning, content = ReasoningStream(REASONING_PARSERS[name]()), [], []
    for i, delta in enumerate(deltas):
        r, c = state.feed(delta, i == len(deltas) - 1)
        reasoning += [r] if r is not None else []
        content += [c] if c is not None else []
    return reasoning, content


def test_streamed_marks_split_across_deltas():
    reasoning, content = stream("qwen3", ["<th", "ink>Let ", "me see.</thi", "nk>It ", "is 4."])
    assert reasoning == ["Let ", "me see."] and content == ["It ", "is 4."]
    reasoning, content = stream("deepseek_r1", ["Hm", "m.<", "/think>", "Yes"])
    assert reasoning == ["Hm", "m."] and content == ["Yes"]


def test_streamed_answers_without_thinking_and_cut_thinking():
    assert stream("qwen3", ["<", "b>bold</b>"]) == ([], ["<b>bold</b>"])
    assert stream("qwen3", ["It ", "is 4."]) == ([], ["It ", "is 4."])
    assert stream("qwen3", ["<think>a", "b</th"]) == (["a", "b</th"], [])
    assert "".join(stream("deepseek_r1", ["<think>", "x", "</think>", ""])[0]) == "x"
