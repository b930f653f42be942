"""use_beam_search (vLLM's extra) on the server: the n best beams as choices, best first, the
same beams LLM.beam_search finds; streamed as one chunk per beam; logprobs trimmed to those
asked for; the chat endpoint too; structured outputs refused (the beams would ignore them)."""
import json

import httpx
import pytest

from inference_engine import LLM, BeamSearchParams

PROMPT = "The three primary colours are"


@pytest.fixture(scope="module")
def offline_beams():
    llm = LLM(dtype="float32", max_model_len=512, cpu_kv_cache_space_gib=0.25)
    try:
        tokenizer = llm.get_tokenizer()
        beams = llm.beam_search(PROMPT, BeamSearchParams(beam_width=3, max_tokens=8))[0]
        return [tokenizer.decode(s.tokens[len(tokenizer.encode(PROMPT)):],
                                 skip_special_tokens=True) for s in beams.sequences]
    finally:
        llm.shutdown()


def completion(url, **extra):
    body = {"prompt": PROMPT, "max_tokens": 8, "n": 3, "use_beam_search": True} | extra
    return httpx.post(url + "/v1/completions", json=body, timeout=120)


def test_completions_return_the_best_beams(server, offline_beams):
    reply = completion(server.url).json()
    assert [c["text"] for c in reply["choices"]] == offline_beams
    assert [c["index"] for c in reply["choices"]] == [0, 1, 2]
    assert reply["usage"]["completion_tokens"] >= 3


def test_streamed_beams_and_logprobs(server, offline_beams):
    with httpx.stream("POST", server.url + "/v1/completions", timeout=120,
                      json={"prompt": PROMPT, "max_tokens": 8, "n": 3, "use_beam_search": True,
                            "stream": True}) as reply:
        lines = [line[6:] for line in reply.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    texts = {}
    for line in lines[:-1]:
        for choice in json.loads(line)["choices"]:
            texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    assert [texts[i] for i in range(3)] == offline_beams
    with_logprobs = completion(server.url, logprobs=2).json()["choices"][0]["logprobs"]
    assert all(len(top) <= 3 for top in with_logprobs["top_logprobs"])  # the token and top 2


def test_chat_with_beam_search(server):
    reply = httpx.post(server.url + "/v1/chat/completions", timeout=120, json={
        "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 6, "n": 2,
        "use_beam_search": True})
    assert reply.status_code == 200
    choices = reply.json()["choices"]
    assert len(choices) == 2 and choices[0]["message"]["content"] != choices[1]["message"]["content"]


def test_structured_outputs_with_beam_search_are_refused(server):
    reply = completion(server.url, response_format={"type": "json_object"})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "use_beam_search"
