"""Structured outputs end to end on the embedded model (float32, CPU): every completion matches
its JSON schema, regular expression, choice or grammar and stops when it is complete; requests
without a constraint in the same batch are unchanged; bad constraints are refused up front."""
import json
import re

import pytest

from inference_engine import LLM, SamplingParams
from inference_engine.errors import SamplingParamsError

pytest.importorskip("xgrammar")

PERSON = {"type": "object", "properties": {"name": {"type": "string"},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
CODE = r"[0-9]{3}-[a-z]{2,4}"
VERDICT = 'root ::= ("yes" | "no") ", because " [a-z ]+ "."'


def chat(llm: LLM, text: str) -> str:
    return llm.get_tokenizer().apply_chat_template([{"role": "user", "content": text}],
                                                   tokenize=False, add_generation_prompt=True)


def constrained(**kwargs) -> SamplingParams:
    structured = kwargs.pop("structured")
    return SamplingParams(**{"temperature": 0.0, "max_tokens": 48, **kwargs},
                          structured_outputs=structured)


def check_all(llm: LLM, **extra) -> list[str]:
    prompts = [chat(llm, "Describe a person as JSON."), chat(llm, "Give me a code."),
               chat(llm, "What is the capital of France?"), chat(llm, "Is the sky blue?"),
               chat(llm, "Write some JSON.")]
    params = [constrained(structured={"json": PERSON}, **extra),
              constrained(structured={"regex": CODE}, **extra),
              constrained(structured={"choice": ["Paris", "London", "Berlin"]}, **extra),
              constrained(structured={"grammar": VERDICT}, **extra),
              constrained(structured={"json_object": True}, max_tokens=80)]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    texts = [[c.text for c in o.outputs] for o in outputs]
    for c in (c for o in outputs[:4] for c in o.outputs):
        assert c.finish_reason == "stop", c  # complete well within max_tokens: it stopped
    for text in texts[0]:
        person = json.loads(text)
        assert set(person) == {"name", "age"} and isinstance(person["name"], str)
        assert isinstance(person["age"], int)
    assert all(re.fullmatch(CODE, t) for t in texts[1])
    assert all(t in ("Paris", "London", "Berlin") for t in texts[2])
    assert all(re.fullmatch(r"(yes|no), because [a-z ]+\.", t) for t in texts[3])
    if outputs[4].outputs[0].finish_reason == "stop":  # else cut by max_tokens mid-object
        assert isinstance(json.loads(texts[4][0]), dict)
    return [t for ts in texts for t in ts]


@pytest.fixture(scope="module")
def greedy_texts(llm) -> list[str]:
    return check_all(llm)


def test_greedy_outputs_match_their_constraints(greedy_texts):
    assert len(greedy_texts) == 5


def test_sampled_best_of_completions_each_match(llm):
    check_all(llm, temperature=1.0, seed=7, n=2, best_of=3)


@pytest.mark.parametrize("extra", [{"async_scheduling": True},
                                   {"enable_chunked_prefill": True, "max_num_batched_tokens": 16}])
def test_async_scheduling_and_chunked_prefill_give_the_same_texts(greedy_texts, extra):
    other = LLM(dtype="float32", max_model_len=512, max_num_seqs=8, cpu_kv_cache_space_gib=0.25,
                **extra)
    try:
        assert check_all(other) == greedy_texts
    finally:
        other.shutdown()


def test_unconstrained_requests_beside_them_are_unchanged(llm):
    plain = SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True)
    prompt = chat(llm, "Tell me about printing.")
    alone = llm.generate([prompt], plain, use_tqdm=False)[0].outputs[0].token_ids
    mixed = llm.generate([chat(llm, "Give me a code."), prompt, chat(llm, "JSON please")],
                         [constrained(structured={"regex": CODE}), plain,
                          constrained(structured={"json": PERSON})], use_tqdm=False)
    assert mixed[1].outputs[0].token_ids == alone


@pytest.mark.parametrize("structured,reason", [
    ({"json": '{"type": "object", "properties": 3}'}, "invalid json"),
    ({"json": "{not json"}, "invalid json"),
    ({"regex": "[0-9"}, "invalid regex"),
    ({"grammar": "root ::= undefined_rule"}, "invalid grammar"),
])
def test_bad_constraints_are_refused_and_nothing_is_left(llm, structured, reason):
    with pytest.raises(SamplingParamsError, match=reason) as err:
        llm.generate(["Hi"], SamplingParams(structured_outputs=structured), use_tqdm=False)
    assert err.value.param == "structured_outputs"
    assert not llm.llm_engine.has_unfinished_requests()
