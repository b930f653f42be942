"""The errors the engine gives its callers besides a plain ValueError for a bad request (a
server answers each with its own status code)."""


class InvalidRequestError(ValueError):
    """A request the engine can't take as it is; `param` names the field at fault (a server's
    error body names it)."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


class SamplingParamsError(InvalidRequestError):
    """A sampling parameter is out of range."""


class AsyncEngineDeadError(RuntimeError):
    """The background loop has stopped; the engine takes no more requests."""


class EngineOverloadedError(RuntimeError):
    """The engine refused or gave up a request that it could serve later: its waiting queue
    is full, the request waited longer than the queue timeout, or the server is shutting
    down. A server answers 503 with Retry-After."""


class StreamStalledError(RuntimeError):
    """The request's reader took none of its outputs for longer than the stall timeout (a
    client that stopped reading its stream), so the request was aborted."""
