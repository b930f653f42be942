"""Async scheduling: a launched step whose sampled tokens are still on the device.

The engine launches step N+1 before it reads step N's tokens, so that scheduling, input
preparation and output processing on the host overlap the device's work. Step N+1's decode rows
take their inputs from step N's tokens on the device (see ModelRunner); meanwhile every sequence
that step N ran has a token in flight (Sequence.num_pending), which the scheduler and the block
manager count like any other. When step N is read, a sequence it finished (a stop token, a stop
string) has had one token too many computed by step N+1: the engine drops it.
"""
from dataclasses import dataclass

from inference_engine.core.scheduler import SchedulerOutputs
from inference_engine.engine.step_input import StepRows
from inference_engine.sample.device_samples import DeviceSamples


@dataclass
class StepInFlight:
    """A step's schedule and its samples, launched but not yet read."""
    sched: SchedulerOutputs
    rows: StepRows  # whose each sample row is
    samples: DeviceSamples

    def count_pending(self, delta: int) -> None:
        """Adds `delta` to the tokens in flight of every sequence the step samples."""
        for _, seq in self.rows.seqs:
            seq.num_pending += delta


def needs_host_tokens(sched: SchedulerOutputs) -> bool:
    """True when some request of `sched` cannot have its next token sampled before this step's
    tokens are on the host: a request's first tokens fork its best_of sequences; a seeded
    request's sequences share one random stream, from which a sequence this step finishes must
    not draw again; a structured output's next token is masked by its grammar's state after
    this one, and a ban of a bad word of several tokens by the tokens before. (Penalties need
    not wait: they count the token in flight on the device.)"""
    for group in sched.scheduled_seq_groups:
        params = group.sampling_params
        if params.best_of > 1 and (params.seed is not None or group.is_first_prefill):
            return True
        if params.structured_outputs is not None:  # its matcher must accept the token first
            return True
        if params.bans_after_tokens:  # a bad word's ban looks at the last tokens
            return True
    return False
