"""How much the async engine lets wait, so that a burst of requests is refused quickly (and
retried by the clients) instead of queueing for minutes and holding memory meanwhile."""
from dataclasses import dataclass

from inference_engine.errors import EngineOverloadedError


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    """`max_waiting_requests`: new requests are refused while that many wait beyond the ones a
    step runs (None: no bound). `queue_timeout`: a request never scheduled within that many
    seconds is given up. `stream_stall_timeout`: a request whose reader has taken none of its
    pending outputs for that many seconds is aborted (a client that stopped reading its
    stream). Each is off when None."""
    max_waiting_requests: int | None = None
    queue_timeout: float | None = None
    stream_stall_timeout: float | None = None

    def __post_init__(self):
        for name in ("max_waiting_requests", "queue_timeout", "stream_stall_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or None for no limit), got {value}")


class Admission:
    """The admission decision: refused while draining for a shutdown, or when the new
    requests would take the waiting queue past its bound."""

    def __init__(self, limits: AdmissionLimits):
        self.limits = limits
        self.draining = False

    def check(self, num_waiting: int, num_new: int) -> None:
        """`num_waiting`: how many would wait with the `num_new` requests taken."""
        if self.draining:
            raise EngineOverloadedError("the server is shutting down")
        bound = self.limits.max_waiting_requests
        if bound is not None and num_waiting > bound:
            raise EngineOverloadedError(f"{num_waiting - num_new} requests are waiting, at most "
                                        f"{bound} may (--max-waiting-requests)")
