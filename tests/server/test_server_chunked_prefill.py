"""A server with chunked prefill and prefix caching on: a long prompt streamed in chunks of a
64-token budget gives the text of the default server (whole prompts), no empty chunk while its
prefill runs, and /metrics counts the prompt tokens a repeated prompt did not compute."""
import httpx
import openai
import pytest

from utils.server import SERVER_ARGS, ServerThread

LONG = ("Printing with movable type spread across Europe within a few decades, and with it came "
        "cheaper books, new readers and new kinds of writing. ") * 8 + "In short,"
GREEDY = {"temperature": 0.0, "max_tokens": 12}


@pytest.fixture(scope="module")
def chunked_server():
    args = SERVER_ARGS + ["--enable-chunked-prefill", "--max-num-batched-tokens", "64",
                          "--max-num-seqs", "16", "--enable-prefix-caching"]
    with ServerThread(args) as running:
        yield running


def test_long_prompt_in_chunks_streams_the_whole_prompt_text(client, model, chunked_server):
    chunked = openai.OpenAI(base_url=chunked_server.url + "/v1", api_key="unused", max_retries=0,
                            timeout=120)
    plain = client.completions.create(model=model, prompt=LONG, **GREEDY)
    assert plain.usage.prompt_tokens > 64  # longer than one step's budget
    chunks = list(chunked.completions.create(model=model, prompt=LONG, stream=True, **GREEDY))
    assert "".join(c.choices[0].text for c in chunks) == plain.choices[0].text
    assert all(c.choices[0].text or c.choices[0].finish_reason for c in chunks)

    again = chunked.completions.create(model=model, prompt=LONG, **GREEDY)
    assert again.choices[0].text == plain.choices[0].text
    metrics = httpx.get(chunked_server.url + "/metrics").text
    hits = next(float(line.split()[-1]) for line in metrics.splitlines()
                if line.startswith("inference_engine:prefix_cache_hits_total"))
    assert hits >= plain.usage.prompt_tokens - 16  # all but the block of its last token
