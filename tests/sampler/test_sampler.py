"""Sampler knobs against hand-computed expectations on small vocabularies."""
import math

import pytest
import torch

from inference_engine.errors import SamplingParamsError
from inference_engine.sample.metadata import PromptLogprobRows, SampleRow, SamplingMetadata
from inference_engine.sample.sampler import Sampler, apply_min_p, apply_top_k_top_p
from inference_engine.sampling_params import SamplingParams

EOS = 0


def row(params: SamplingParams, prompt=(1, 2), output=(), seed=None, num_samples=1) -> SampleRow:
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return SampleRow(params, list(prompt), list(output), generator=gen, num_samples=num_samples)


def sample(logits, *rows):
    meta = SamplingMetadata(list(rows), list(range(len(rows))))
    logits = torch.as_tensor(logits, dtype=torch.float32)
    out = Sampler(vocab_size=logits.shape[-1], eos_token_id=EOS)(logits, meta)
    return [[s.token_id for s in r] for r in out.samples], out


def test_greedy_takes_argmax():
    tokens, _ = sample([[0.1, 3.0, 0.2, 2.9]], row(SamplingParams(temperature=0)))
    assert tokens == [[1]]


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits():
    # Token 1 (seen in the prompt) drops from 3.0 to 1.5; token 3 (unseen) wins with 2.0.
    params = SamplingParams(temperature=0, repetition_penalty=2.0)
    tokens, _ = sample([[0.0, 3.0, -1.0, 2.0]], row(params, prompt=(1, 2)))
    assert tokens == [[3]]
    # A negative seen logit gets more negative: -1 * 2 = -2 is below unseen -1.5.
    tokens, _ = sample([[-9.0, -9.0, -1.0, -1.5]], row(params, prompt=(2,)))
    assert tokens == [[3]]


def test_frequency_and_presence_penalties_count_output_tokens_only():
    # Token 1 appears twice in the output: 3.0 - 2 * 0.6 = 1.8 < 2.0.
    tokens, _ = sample([[0.0, 3.0, 2.0]], row(SamplingParams(temperature=0, frequency_penalty=0.6),
                                              prompt=(2, 2, 2), output=(1, 1)))
    assert tokens == [[2]]
    # Presence subtracts once however often: 3.0 - 0.9 = 2.1 > 2.0.
    tokens, _ = sample([[0.0, 3.0, 2.0]], row(SamplingParams(temperature=0, presence_penalty=0.9),
                                              output=(1, 1)))
    assert tokens == [[1]]


def test_logit_bias_and_min_tokens():
    tokens, _ = sample([[5.0, 1.0, 2.0]], row(SamplingParams(temperature=0, logit_bias={1: 10})))
    assert tokens == [[1]]
    # EOS (token 0) and stop token 2 are banned until min_tokens are out.
    params = SamplingParams(temperature=0, min_tokens=2, stop_token_ids=[2])
    assert sample([[5.0, 1.0, 4.0]], row(params, output=(1,)))[0] == [[1]]
    assert sample([[5.0, 1.0, 4.0]], row(params, output=(1, 1)))[0] == [[0]]


def test_top_k_top_p_min_p_masks():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = apply_top_k_top_p(logits, torch.tensor([2]), torch.tensor([1.0]))
    assert torch.isinf(kept[0, 2:]).all() and not torch.isinf(kept[0, :2]).any()
    # top_p=0.8: 0.5 (before 0) and 0.3 (before 0.5) stay, 0.15 (before 0.8) goes.
    kept = apply_top_k_top_p(logits, torch.tensor([4]), torch.tensor([0.8]))
    assert (~torch.isinf(kept[0])).tolist() == [True, True, False, False]
    # top_p tiny still keeps the most likely token.
    kept = apply_top_k_top_p(logits, torch.tensor([4]), torch.tensor([1e-6]))
    assert (~torch.isinf(kept[0])).tolist() == [True, False, False, False]
    probs = apply_min_p(logits.softmax(-1), torch.tensor([0.5]))  # threshold 0.25
    assert (probs[0] > 0).tolist() == [True, True, False, False]


def test_random_sampling_follows_the_distribution():
    probs = [0.6, 0.3, 0.1, 0.0]
    logits = [[math.log(p) if p else -math.inf for p in probs]]
    params = SamplingParams(temperature=1.0, n=1, best_of=4000)
    tokens, _ = sample(logits, row(params, seed=123, num_samples=4000))
    freq = torch.bincount(torch.tensor(tokens[0]), minlength=4).float() / 4000
    assert torch.allclose(freq, torch.tensor(probs), atol=0.03)


def test_temperature_sharpens():
    logits = [[1.0, 0.0]]
    cold, _ = sample(logits, row(SamplingParams(temperature=0.05, best_of=500), seed=1, num_samples=500))
    assert sum(t == 0 for t in cold[0]) == 500


def test_seeded_rows_do_not_depend_on_the_batch():
    logits = torch.randn(3, 50).tolist()
    params = SamplingParams(temperature=1.0, seed=7)
    alone, _ = sample([logits[1]], row(params, seed=7))
    batched, _ = sample(logits, row(SamplingParams(temperature=1.0)), row(params, seed=7),
                        row(SamplingParams(temperature=0.7)))
    assert alone[0] == batched[1]


def test_logprobs_ranks_and_top_n():
    logits = [[2.0, 1.0, 0.0, -1.0]]
    _, out = sample(logits, row(SamplingParams(temperature=0, logprobs=2)))
    entries = out.samples[0][0].top_logprobs
    expected = torch.log_softmax(torch.tensor(logits[0]), -1)
    assert set(entries) == {0, 1}
    assert entries[0].rank == 1 and entries[1].rank == 2
    assert entries[1].logprob == pytest.approx(expected[1].item())
    assert out.samples[0][0].logprob == pytest.approx(expected[0].item())


def test_prompt_logprobs():
    params = SamplingParams(temperature=0, prompt_logprobs=1)
    r = row(params, prompt=(1, 3, 2))
    logits = torch.log_softmax(torch.randn(3, 4), -1)
    meta = SamplingMetadata([r], [2], [PromptLogprobRows(r.prompt_token_ids, 1, 0)])
    out = Sampler(4, EOS)(logits, meta)
    assert len(out.prompt_logprobs[0]) == 2
    for j, target in enumerate((3, 2)):
        entry = out.prompt_logprobs[0][j][target]
        assert entry.logprob == pytest.approx(logits[j, target].item(), abs=1e-5)
        assert entry.rank == int((logits[j] > logits[j, target]).sum()) + 1


@pytest.mark.parametrize("field,value", [("temperature", -0.1), ("top_p", 0.0), ("top_p", 1.5),
                                         ("max_tokens", 0), ("n", 0), ("top_k", 0),
                                         ("min_p", 2.0), ("repetition_penalty", 0.0)])
def test_invalid_params_name_the_field(field, value):
    with pytest.raises(ValueError, match=field) as info:
        SamplingParams(**{field: value})
    assert isinstance(info.value, SamplingParamsError) and info.value.param == field


@pytest.mark.parametrize("fused", [True, False], ids=["one-pass", "general"])
def test_plain_greedy_rows_take_the_one_pass_op_with_the_general_paths_results(monkeypatch, fused):
    from inference_engine.sample import sampler
    calls, one_pass = [], sampler.ops.greedy_sample
    monkeypatch.setattr(sampler, "FUSED_GREEDY", fused)
    monkeypatch.setattr(sampler.ops, "greedy_sample",
                        lambda logits: calls.append(logits.shape) or one_pass(logits))
    logits = torch.randn(3, 1000)
    greedy = SamplingParams(temperature=0, max_tokens=5)
    tokens, out = sample(logits, row(greedy), row(greedy), row(greedy))
    assert calls == ([(3, 1000)] if fused else [])
    assert tokens == [[i] for i in logits.argmax(-1).tolist()]
    expected = torch.log_softmax(logits, -1).max(-1).values.tolist()
    assert [r[0].logprob for r in out.samples] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("params", [dict(repetition_penalty=1.5), dict(logit_bias={3: 1.0}),
                                    dict(logprobs=2), dict(min_tokens=3)],
                         ids=["penalty", "bias", "logprobs", "min_tokens"])
def test_greedy_rows_with_other_knobs_take_the_general_path(monkeypatch, params):
    from inference_engine.sample import sampler
    calls = []
    monkeypatch.setattr(sampler.ops, "greedy_sample", calls.append)
    plain = row(SamplingParams(temperature=0))
    sample(torch.randn(2, 50), plain, row(SamplingParams(temperature=0, **params)))
    assert calls == []
