"""A server with chunked prefill and prefix caching on: a long prompt streamed in chunks of a
64-token budget gives the text of the default server (whole prompts), no empty chunk while its
prefill runs, and /metrics counts the prompt tokens a repeated prompt did not compute (none
after POST /reset_prefix_cache), and usage reports them as cached_tokens."""
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
    hits = _prefix_cache_hits(chunked_server.url)
    assert hits >= plain.usage.prompt_tokens - 16  # all but the block of its last token


def _prefix_cache_hits(url: str) -> float:
    metrics = httpx.get(url + "/metrics").text
    return next(float(line.split()[-1]) for line in metrics.splitlines()
                if line.startswith("inference_engine:prefix_cache_hits_total"))


def test_reset_prefix_cache_forgets_the_cached_prompts(model, chunked_server):
    chunked = openai.OpenAI(base_url=chunked_server.url + "/v1", api_key="unused", max_retries=0,
                            timeout=120)
    prompt = "A different long prompt, so that nothing else has cached it. " * 12
    first = chunked.completions.create(model=model, prompt=prompt, **GREEDY)
    cached = _prefix_cache_hits(chunked_server.url)
    assert httpx.post(chunked_server.url + "/reset_prefix_cache").status_code == 200
    again = chunked.completions.create(model=model, prompt=prompt, **GREEDY)
    assert again.choices[0].text == first.choices[0].text
    assert _prefix_cache_hits(chunked_server.url) == cached  # computed anew: nothing was found
    chunked.completions.create(model=model, prompt=prompt, **GREEDY)
    assert _prefix_cache_hits(chunked_server.url) >= cached + first.usage.prompt_tokens - 16


def test_a_cache_salt_keeps_a_tenants_cached_prompts_its_own(model, chunked_server):
    prompt = "A tenant's private system prompt, which others must not find cached. " * 8
    body = {"model": model, "prompt": prompt, "max_tokens": 2, "temperature": 0}

    def hits_of(salt: str | None) -> float:
        before = _prefix_cache_hits(chunked_server.url)
        reply = httpx.post(chunked_server.url + "/v1/completions", timeout=120,
                           json={**body, **({"cache_salt": salt} if salt else {})})
        assert reply.status_code == 200, reply.text
        return _prefix_cache_hits(chunked_server.url) - before

    assert hits_of("a") == 0 and hits_of("b") == 0 and hits_of(None) == 0
    assert hits_of("a") > 0
    empty = httpx.post(chunked_server.url + "/v1/completions", json={**body, "cache_salt": ""})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "cache_salt"


def test_usage_counts_the_cached_prompt_tokens(model, chunked_server):
    """OpenAI's usage.prompt_tokens_details.cached_tokens: the prompt tokens the prefix cache
    held (all but the block of the last token, the second time), streamed usage too."""
    chunked = openai.OpenAI(base_url=chunked_server.url + "/v1", api_key="unused", max_retries=0,
                            timeout=120)
    prompt = "A prompt about cached tokens, long enough for several blocks of them. " * 6
    assert httpx.post(chunked_server.url + "/reset_prefix_cache").status_code == 200
    first = chunked.completions.create(model=model, prompt=prompt, **GREEDY)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    again = chunked.completions.create(model=model, prompt=prompt, **GREEDY)
    cached = again.usage.prompt_tokens_details.cached_tokens
    assert first.usage.prompt_tokens - 16 <= cached < first.usage.prompt_tokens
    chunks = list(chunked.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], stream=True,
        stream_options={"include_usage": True}, **GREEDY))
    chat_again = chunked.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], **GREEDY)
    assert chat_again.usage.prompt_tokens_details.cached_tokens > 0
    assert chunks[-1].usage.prompt_tokens_details is not None
