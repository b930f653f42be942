"""The order in which waiting requests are admitted, and which running request a shortage of KV
blocks preempts.

The running requests are kept in the same order, so a shortage preempts the last of them.

- `fcfs`: first come first served; the newest running request is preempted (the default).
- `priority`: each request's `priority`, lower first, then arrival (vLLM's `priority` policy);
  the running request of the lowest priority, newest first, is preempted.
- `lof`: longest output first, by the requests' `max_tokens` (SGLang's `lof`). For offline
  batches: the longest requests set a run's length, one token a step, so starting them first lets
  the short ones fill the steps beside them instead of leaving them to decode alone at the end
  (`benchmarks/workload_floor.py --scheduling-policy`). It starves short requests while long ones
  wait, so it is no policy for serving. The shortest running request is preempted first.
"""
import bisect
from collections import deque

from inference_engine.config import SCHEDULING_POLICIES
from inference_engine.sequence import SequenceGroup


class SchedulingPolicy:
    """Orders requests: smaller keys are admitted first and preempted last."""

    def __init__(self, name: str, max_model_len: int):
        assert name in SCHEDULING_POLICIES, name  # SchedulerConfig checked it
        self.name = name
        self.max_model_len = max_model_len

    def key(self, group: SequenceGroup) -> tuple:
        arrival = group.metrics.arrival_time
        if self.name == "priority":
            return group.priority, arrival
        if self.name == "lof":
            max_tokens = group.sampling_params.max_tokens
            if max_tokens is None:  # bounded by the model's length only
                max_tokens = self.max_model_len - len(group.prompt_token_ids)
            return -max_tokens, arrival
        return (arrival,)

    def insert(self, queue: deque[SequenceGroup], group: SequenceGroup) -> None:
        """Puts `group` into `queue` (kept in the policy's order) after its equals."""
        if self.name == "fcfs":
            queue.append(group)
        else:
            bisect.insort_right(queue, group, key=self.key)


class WaitingQueue:
    """The waiting requests in the policy's order: a deque for first come first served (new ones
    at the back, preempted ones at the front, as they arrived before every waiting one), a sorted
    deque otherwise."""

    def __init__(self, policy: SchedulingPolicy):
        self.policy = policy
        self._groups: deque[SequenceGroup] = deque()

    def add(self, group: SequenceGroup) -> None:
        self.policy.insert(self._groups, group)

    def add_preempted(self, group: SequenceGroup) -> None:
        if self.policy.name == "fcfs":
            self._groups.appendleft(group)
        else:
            bisect.insort_left(self._groups, group, key=self.policy.key)

    def popleft(self) -> SequenceGroup:
        return self._groups.popleft()

    def remove(self, group: SequenceGroup) -> None:
        self._groups.remove(group)

    def keep(self, predicate) -> None:
        self._groups = deque(g for g in self._groups if predicate(g))

    def __getitem__(self, index: int) -> SequenceGroup:
        return self._groups[index]

    def __iter__(self):
        return iter(self._groups)

    def __len__(self) -> int:
        return len(self._groups)

    def __bool__(self) -> bool:
        return bool(self._groups)
