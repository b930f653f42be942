"""Stop conditions and log-probabilities through the whole engine."""
import math

from inference_engine import SamplingParams


def greedy(llm, prompt, **kwargs):
    return llm.generate(prompt, SamplingParams(temperature=0, **kwargs), use_tqdm=False)[0]


PROMPT = "Count: 1, 2, 3, 4, 5, 6, 7, 8,"


def test_max_tokens_and_ignore_eos(llm):
    out = greedy(llm, PROMPT, max_tokens=7, ignore_eos=True).outputs[0]
    assert len(out.token_ids) == 7 and out.finish_reason == "length"


def test_stop_string_is_cut_unless_asked(llm):
    full = greedy(llm, PROMPT, max_tokens=12).outputs[0].text
    assert " 10," in full
    out = greedy(llm, PROMPT, max_tokens=12, stop=[" 10"]).outputs[0]
    assert out.finish_reason == "stop" and out.stop_reason == " 10"
    assert out.text == full[:full.index(" 10")]
    kept = greedy(llm, PROMPT, max_tokens=12, stop=[" 10"], include_stop_str_in_output=True)
    assert kept.outputs[0].text == full[:full.index(" 10") + 3]


def test_stop_token_ids_and_min_tokens(llm):
    full = greedy(llm, PROMPT, max_tokens=10).outputs[0]
    stop_id = full.token_ids[3]
    out = greedy(llm, PROMPT, max_tokens=10, stop_token_ids=[stop_id]).outputs[0]
    assert out.finish_reason == "stop" and out.stop_reason == stop_id
    assert out.token_ids[-1] == stop_id and len(out.token_ids) == full.token_ids.index(stop_id) + 1
    late = greedy(llm, PROMPT, max_tokens=10, stop_token_ids=[full.token_ids[0]], min_tokens=5)
    assert len(late.outputs[0].token_ids) >= 5


def test_eos_stops_chat_answers(llm):
    out = llm.chat([{"role": "user", "content": "Say hello."}],
                   SamplingParams(temperature=0, max_tokens=64), use_tqdm=False)[0].outputs[0]
    eos = llm.get_tokenizer().eos_token_id
    assert out.finish_reason == "stop" and out.token_ids[-1] == eos
    assert "<|im_end|>" not in out.text


def test_logprobs_and_prompt_logprobs(llm):
    out = greedy(llm, PROMPT, max_tokens=4, logprobs=3, prompt_logprobs=2)
    comp = out.outputs[0]
    assert len(comp.logprobs) == 4
    for token, entries in zip(comp.token_ids, comp.logprobs):
        assert token in entries and entries[token].rank == 1  # greedy picks the top token
        assert 3 <= len(entries) <= 4
        assert all(e.decoded_token is not None for e in entries.values())
    assert math.isclose(comp.cumulative_logprob, sum(d[t].logprob for t, d in
                                                      zip(comp.token_ids, comp.logprobs)),
                        rel_tol=1e-5)
    assert out.prompt_logprobs[0] is None and len(out.prompt_logprobs) == len(out.prompt_token_ids)
    for token, entries in zip(out.prompt_token_ids[1:], out.prompt_logprobs[1:]):
        assert token in entries and entries[token].logprob <= 0
