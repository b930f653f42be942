"""A server with n-gram speculative decoding (`--speculative-config`, vLLM's JSON): greedy
answers, streamed or not, are the default server's, /metrics counts the drafts checked and
kept, and a bad config stops the start."""
import httpx
import openai
import pytest

from utils.server import SERVER_ARGS, ServerThread

PROMPT = ("Copy this list exactly: apples, pears, plums, cherries, apples, pears, plums, "
          "cherries, apples, pears,")
GREEDY = {"temperature": 0.0, "max_tokens": 24}


@pytest.fixture(scope="module")
def spec_server():
    with ServerThread(SERVER_ARGS + ["--speculative-config",
                                     '{"method": "ngram", "num_speculative_tokens": 4}']) as s:
        yield s


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics").text
    return next(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith(f"inference_engine:{name}"))


def test_answers_are_the_default_servers_and_drafts_are_counted(client, model, spec_server):
    spec = openai.OpenAI(base_url=spec_server.url + "/v1", api_key="unused", max_retries=0,
                         timeout=120)
    plain = client.completions.create(model=model, prompt=PROMPT, **GREEDY)
    ours = spec.completions.create(model=model, prompt=PROMPT, **GREEDY)
    assert ours.choices[0].text == plain.choices[0].text
    assert ours.usage.completion_tokens == plain.usage.completion_tokens
    streamed = spec.completions.create(model=model, prompt=PROMPT, stream=True, **GREEDY)
    assert "".join(c.choices[0].text for c in streamed) == plain.choices[0].text
    messages = [{"role": "user", "content": PROMPT}]
    assert spec.chat.completions.create(model=model, messages=messages, **GREEDY).choices[0] \
        .message.content == client.chat.completions.create(
            model=model, messages=messages, **GREEDY).choices[0].message.content
    drafts = metric(spec_server.url, "spec_decode_num_draft_tokens_total")
    assert 0 < metric(spec_server.url, "spec_decode_num_accepted_tokens_total") <= drafts
    assert 0 < metric(spec_server.url, "spec_decode_num_drafts_total") <= drafts


def test_a_bad_speculative_config_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        ServerThread(SERVER_ARGS + ["--speculative-config", '{"method": "medusa"}'])
    assert "speculative method 'medusa' is not supported" in capsys.readouterr().err
