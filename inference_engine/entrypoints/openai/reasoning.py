"""Reasoning models write their thinking between `<think>` and `</think>` before the answer;
with `--reasoning-parser NAME` (vLLM's flag) a chat answer returns it apart, as
`reasoning_content`, and `content` holds only what follows.

- `qwen3`: the output opens the thinking itself (`<think>...</think>`); an output that does not
  start with `<think>` is all content (thinking switched off).
- `deepseek_r1`: the chat template opens the thinking, so the output starts inside it (a
  leading `<think>` is dropped) and everything before `</think>` is thinking.

Thinking that is never closed (cut by max_tokens) is all thinking.
"""
START, END = "<think>", "</think>"


def partial_suffix(text: str, mark: str) -> int:
    """How many characters at the end of `text` begin `mark` (and may yet complete it)."""
    return next((n for n in range(min(len(mark) - 1, len(text)), 0, -1)
                 if text.endswith(mark[:n])), 0)


class ReasoningParser:
    def __init__(self, starts_inside: bool):
        self.starts_inside = starts_inside

    def split(self, text: str) -> tuple[str | None, str | None]:
        """(reasoning, content) of a whole answer; None for an empty part."""
        start = self.reasoning_start(text, finished=True)
        if start is None:
            return None, text
        end = text.find(END)
        if end < 0:
            return text[start:] or None, None
        return text[start:end] or None, text[end + len(END):] or None

    def reasoning_start(self, text: str, finished: bool) -> int | None:
        """Where the thinking begins: None when the answer has none; -1 while undecided."""
        if text.startswith(START):
            return len(START)
        if START.startswith(text) and not finished:
            return -1  # may still become the start mark
        return 0 if self.starts_inside else None


REASONING_PARSERS = {"qwen3": lambda: ReasoningParser(starts_inside=False),
                     "deepseek_r1": lambda: ReasoningParser(starts_inside=True)}


class ReasoningStream:
    """One streamed choice: its deltas split into thinking and answer as they come, holding
    back text that may still turn out to be a mark."""

    def __init__(self, parser: ReasoningParser):
        self.parser = parser
        self.text = ""
        self.sent_reasoning = self.sent_content = 0  # positions in text sent as each

    def feed(self, delta: str, finished: bool) -> tuple[str | None, str | None]:
        self.text += delta
        text, parser = self.text, self.parser
        start = parser.reasoning_start(text, finished)
        if start == -1:
            return None, None
        if start is None:
            return None, self._content(0, len(text))
        end = text.find(END)
        if end < 0:
            hold = 0 if finished else partial_suffix(text, END)
            return self._reasoning(start, len(text) - hold), None
        return self._reasoning(start, end), self._content(end + len(END), len(text))

    def _reasoning(self, start: int, end: int) -> str | None:
        begin = max(start, self.sent_reasoning)
        self.sent_reasoning = max(self.sent_reasoning, end)
        return self.text[begin:end] or None

    def _content(self, start: int, end: int) -> str | None:
        begin = max(start, self.sent_content)
        self.sent_content = max(self.sent_content, end)
        return self.text[begin:end] or None
