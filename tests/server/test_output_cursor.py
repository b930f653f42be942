"""OutputCursor: the deltas of a request add up to its cumulative outputs (tokens, log-probs,
text, finish reasons), whatever the steps did: forked completions, a sibling finishing early,
steps that skipped the request, text held back, best_of > n."""
import random

from inference_engine.outputs import OutputCursor, RequestOutput, RequestOutputKind
from inference_engine.sampling_params import SamplingParams
from inference_engine.sequence import Logprob, Sequence, SequenceGroup, SequenceStatus

DELTA, FINAL_ONLY = RequestOutputKind.DELTA, RequestOutputKind.FINAL_ONLY


class HeldText:
    """Text of one character per token, holding back the last one until the sequence ends
    (as the detokenizer holds a possible stop-string prefix)."""

    def __init__(self, seq: Sequence):
        self.seq = seq

    def text(self, finished: bool) -> str:
        text = "".join(chr(97 + t % 26) for t in self.seq.output_token_ids)
        return text if finished else text[:-1]


def new_group(params: SamplingParams) -> SequenceGroup:
    seq = Sequence(0, [1, 2, 3])
    seq.detokenizer, seq.status = HeldText(seq), SequenceStatus.RUNNING
    return SequenceGroup("r", None, [1, 2, 3], params, seq)


def step(group: SequenceGroup, rng: random.Random, lengths: list[int]) -> RequestOutput | None:
    """One engine step for the group (or a step that skipped it); the final output if it
    finished. Completion i stops after lengths[i] tokens."""
    if rng.random() < 0.3:
        return None  # not scheduled in this step
    if len(group.seqs) == 1 and not group.seqs[0].output_token_ids:
        for i in range(1, group.sampling_params.best_of):  # forked at the first token
            child = group.seqs[0].fork(i, i)
            child.detokenizer = HeldText(child)
            group.seqs.append(child)
    for seq in group.unfinished_seqs():
        token = rng.randrange(1000)
        seq.append_token(token, -0.25 * seq.index, {token: Logprob(-0.25 * seq.index, 1)})
        if len(seq.output_token_ids) == lengths[seq.index]:
            seq.status = SequenceStatus.FINISHED_STOPPED if seq.index else (
                SequenceStatus.FINISHED_LENGTH_CAPPED)
    return RequestOutput.from_seq_group(group) if group.is_finished else None


def run(params: SamplingParams, kind: RequestOutputKind, lengths: list[int], seed: int = 0):
    rng, group = random.Random(seed), new_group(params)
    cursor, outputs = OutputCursor(group, kind), []
    while True:
        final = step(group, rng, lengths)
        output = cursor.next(final)
        if output is not None:
            outputs.append(output)
        if final is not None:
            return outputs, final


def test_deltas_add_up_to_the_final_output():
    params = SamplingParams(n=3, logprobs=1, max_tokens=20)
    for seed in range(20):
        outputs, final = run(params, DELTA, [5, 2, 9], seed)
        assert [o.finished for o in outputs] == [False] * (len(outputs) - 1) + [True]
        for c in final.outputs:
            deltas = [d for o in outputs for d in o.outputs if d.index == c.index]
            assert "".join(d.text for d in deltas) == c.text
            assert sum((d.token_ids for d in deltas), []) == c.token_ids
            assert sum((d.logprobs for d in deltas), []) == c.logprobs
            # The finish reason comes once, on the last delta, and nothing after it.
            assert [d.finish_reason for d in deltas] == [None] * (len(deltas) - 1) + [
                c.finish_reason]
            assert all(d.token_ids or d.finish_reason for d in deltas)


def test_text_held_back_still_sends_the_new_token():
    outputs, _ = run(SamplingParams(max_tokens=20), DELTA, [3])
    first = outputs[0].outputs[0]
    assert first.text == "" and len(first.token_ids) == 1 and first.logprobs is None


def test_best_of_above_n_sends_only_the_final_output():
    params = SamplingParams(n=1, best_of=3, max_tokens=20)
    outputs, final = run(params, DELTA, [4, 6, 2])
    assert outputs == [final]


def test_final_only_sends_the_final_output():
    outputs, final = run(SamplingParams(n=2, max_tokens=20), FINAL_ONLY, [4, 6])
    assert outputs == [final] and [c.index for c in final.outputs] == [0, 1]
