"""Streamed tool calls put together as a client does: pieces by index, the first naming the
call, the later ones adding to its arguments."""
import json


def merged_tool_calls(pieces) -> list[tuple[str, dict]]:
    """(name, arguments) of each call, from our DeltaToolCall pieces or the openai client's."""
    calls: dict[int, list] = {}
    for piece in pieces:
        if piece.index not in calls:
            assert piece.id and piece.function.name  # the first piece names the call
            calls[piece.index] = [piece.function.name, ""]
        else:
            assert piece.id is None and piece.function.name is None
        calls[piece.index][1] += piece.function.arguments or ""
    assert list(calls) == list(range(len(calls)))
    return [(name, json.loads(arguments)) for name, arguments in calls.values()]
