"""The errors an engine request can end with besides a bad request (a ValueError)."""


class AsyncEngineDeadError(RuntimeError):
    """The background loop has stopped; the engine takes no more requests."""


class EngineOverloadedError(RuntimeError):
    """The engine refused or gave up a request that it could serve later: its waiting queue
    is full, the request waited longer than the queue timeout, or the server is shutting
    down. A server answers 503 with Retry-After."""


class StreamStalledError(RuntimeError):
    """The request's reader took none of its outputs for longer than the stall timeout (a
    client that stopped reading its stream), so the request was aborted."""
