"""One streamed chat choice that may call tools, as OpenAI streams calls: the text goes out as
content until the calls begin (held back while it may be their beginning); then each call's id
and name once the name is complete, and its arguments piece by piece as the model writes them.

The finished answer is parsed whole as well: calls the stream could not follow (arguments
written as a JSON string, say) go out whole at the end. A call whose pieces went out and whose
JSON then breaks off (max_tokens) stays sent: the non-streamed answer gives such text as content.
"""
import json

from inference_engine.entrypoints.openai.tool_call_scanner import CallScanner, ScannedCall
from inference_engine.entrypoints.openai.tool_calls import (DeltaFunctionCall, DeltaToolCall,
                                                             FunctionCall, ToolCall)
from inference_engine.entrypoints.openai.tool_parsers import ForcedToolParser, ToolParser


class _SentCall:
    """What of one scanned call has gone out."""

    def __init__(self):
        self.named = False  # its id and name
        self.arguments_from: int | None = None  # the text position its arguments are sent to
        self.done = False  # all of its arguments


class ToolCallStream:
    def __init__(self, parser: ToolParser):
        self.parser = parser
        self.text = ""
        self.sent = 0  # characters of text sent as content
        self.start: int | None = None  # where the calls begin in text
        self.scanner = CallScanner()
        self.sent_calls: list[_SentCall] = []
        self.made_calls = False  # some call went out: the choice finishes with "tool_calls"

    @property
    def _named(self) -> bool:
        return isinstance(self.parser, ForcedToolParser) and self.parser.named

    def feed(self, delta: str, finished: bool) -> tuple[str | None, list[DeltaToolCall] | None]:
        """The content to send now, and the calls' pieces."""
        self.text += delta
        if self._named:  # the whole answer is the named call's arguments
            return None, self._named_arguments(delta)
        if self.start is None:
            self.start = self.parser.calls_start(self.text)
        if self.start is None and finished:
            content = self._send(len(self.text))
        else:  # blanks wait for what follows them: those before the calls are not content
            end = (self.start if self.start is not None
                   else len(self.text) - self.parser.undecided(self.text))
            content = self._send(len(self.text[:end].rstrip()))
        if self.start is not None:
            self.scanner.feed(self.text[self.start:])
        pieces = self._call_pieces() if self.start is not None else []
        if finished:
            content, pieces = self._finish(content, pieces)
        self.made_calls = self.made_calls or bool(pieces)
        return content, pieces or None

    def _finish(self, content: str | None,
                pieces: list[DeltaToolCall]) -> tuple[str | None, list[DeltaToolCall]]:
        """The end of the answer: what the whole parse finds that the stream did not send."""
        _, calls = self.parser.parse(self.text)
        if not calls and not self.made_calls and not pieces:  # no calls after all: all content
            return _join(content, self._send(len(self.text))), []
        streamed = sum(1 for s in self.sent_calls if s.named)
        for index, call in enumerate(calls[streamed:], start=streamed):
            pieces.append(DeltaToolCall(index=index, **call.model_dump()))
        return content, pieces

    def _call_pieces(self) -> list[DeltaToolCall]:
        pieces = []
        for index, call in enumerate(self.scanner.calls):
            if index == len(self.sent_calls):
                self.sent_calls.append(_SentCall())
            piece = self._call_piece(index, call, self.sent_calls[index])
            if piece is not None:
                pieces.append(piece)
            if not self.sent_calls[index].done:
                break  # calls go out in order: a later one waits for this one's end
        return pieces

    def _call_piece(self, index: int, call: ScannedCall, sent: _SentCall) -> DeltaToolCall | None:
        text, piece = self.scanner.text, None
        if sent.done:
            return None
        if not sent.named:
            name = _complete_value(text, call.values.get("name"))
            if not isinstance(name, str):
                return None  # not (yet) a call's name
            sent.named = True
            piece = DeltaToolCall(index=index, **ToolCall(
                function=FunctionCall(name=name, arguments="")).model_dump())
        arguments = self._new_arguments(text, call, sent)
        if arguments:
            if piece is None:
                piece = DeltaToolCall(index=index, function=DeltaFunctionCall(arguments=arguments))
            else:
                piece.function.arguments = arguments
        return piece

    @staticmethod
    def _new_arguments(text: str, call: ScannedCall, sent: _SentCall) -> str:
        """The arguments' text not sent yet: an object's as it grows; a JSON string's (holding
        the arguments' JSON) once complete; "{}" for a call that closed without any."""
        span = call.arguments()
        if span is None:
            sent.done = call.closed
            return "{}" if call.closed else ""
        if span.kind != "container":
            value = _complete_value(text, span)
            if span.end is None:
                return ""
            sent.done = True
            return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        begin = span.start if sent.arguments_from is None else sent.arguments_from
        end = span.end if span.end is not None else len(text)
        sent.arguments_from, sent.done = end, span.end is not None
        return text[begin:end]

    def _named_arguments(self, delta: str) -> list[DeltaToolCall] | None:
        if not self.made_calls:  # the first piece: the call's id and name too
            self.made_calls = True
            call = ToolCall(function=FunctionCall(name=self.parser.tool_choice.function.name,
                                                  arguments=delta))
            return [DeltaToolCall(index=0, **call.model_dump())]
        if not delta:
            return None
        return [DeltaToolCall(index=0, function=DeltaFunctionCall(arguments=delta))]

    def _send(self, end: int) -> str | None:
        chunk = self.text[self.sent:end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return chunk or None


def _complete_value(text: str, span) -> object:
    """The value of a finished span, or None."""
    if span is None or span.end is None:
        return None
    try:
        return json.loads(text[span.start:span.end])
    except json.JSONDecodeError:
        return None


def _join(a: str | None, b: str | None) -> str | None:
    return (a or "") + (b or "") or None
