"""/v1/completions through the official openai client: plain and streamed, n, stop, logprobs,
echo, seed, usage, allowed_token_ids and bad_words, and prompts as text, token ids and lists of
either."""
import httpx
import pytest

PROMPT = "Hello, my name is"
GREEDY = {"temperature": 0.0, "max_tokens": 8}


def stream_text(client, model, **kwargs) -> tuple[dict[int, str], dict[int, str], list]:
    """Text and finish reason per choice index of a streamed completion, and the chunks."""
    chunks = list(client.completions.create(model=model, stream=True, **kwargs))
    texts, reasons = {}, {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason is not None:
                reasons[choice.index] = choice.finish_reason
    return texts, reasons, chunks


def test_plain_completion_is_shaped_like_openai(client, model, server):
    out = client.completions.create(model=model, prompt=PROMPT, **GREEDY)
    assert out.object == "text_completion" and out.id.startswith("cmpl-")
    assert out.model == model and len(out.choices) == 1
    choice = out.choices[0]
    assert choice.index == 0 and choice.text and choice.finish_reason in ("length", "stop")
    prompt_ids = httpx.post(server.url + "/tokenize", json={"prompt": PROMPT}).json()["tokens"]
    assert out.usage.prompt_tokens == len(prompt_ids)
    assert 1 <= out.usage.completion_tokens <= 8
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_streamed_text_equals_plain_text_and_usage_comes_last(client, model):
    plain = client.completions.create(model=model, prompt=PROMPT, **GREEDY)
    texts, reasons, chunks = stream_text(client, model, prompt=PROMPT,
                                         stream_options={"include_usage": True}, **GREEDY)
    assert texts == {0: plain.choices[0].text}
    assert reasons == {0: plain.choices[0].finish_reason}
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage
    assert len({c.id for c in chunks}) == 1


def test_stream_of_several_prompts_keeps_each_choice_apart(client, model):
    prompts = [PROMPT, "The capital of France is"]
    plain = client.completions.create(model=model, prompt=prompts, **GREEDY)
    texts, _, _ = stream_text(client, model, prompt=prompts, **GREEDY)
    assert texts == {c.index: c.text for c in plain.choices}


def test_n_choices(client, model):
    out = client.completions.create(model=model, prompt=PROMPT, n=3, temperature=1.0, seed=7,
                                    max_tokens=4)
    assert sorted(c.index for c in out.choices) == [0, 1, 2]
    assert 3 <= out.usage.completion_tokens <= 3 * 4
    assert all(c.finish_reason in ("length", "stop") for c in out.choices)


def test_stop_string_ends_the_text_before_it(client, model):
    full = client.completions.create(model=model, prompt=PROMPT, **GREEDY).choices[0].text
    stop = full.split()[1]  # the second word: it has text before it
    out = client.completions.create(model=model, prompt=PROMPT, stop=[stop], **GREEDY)
    assert out.choices[0].text == full[:full.index(stop)]
    assert out.choices[0].finish_reason == "stop"


def test_logprobs(client, model):
    out = client.completions.create(model=model, prompt=PROMPT, logprobs=2, temperature=0.0,
                                    max_tokens=4)
    lp = out.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
    assert all(x <= 0 for x in lp.token_logprobs)
    assert all(1 <= len(top) <= 3 for top in lp.top_logprobs)
    # Greedy: the sampled token is the most likely one.
    assert all(max(top.values()) == x for top, x in zip(lp.top_logprobs, lp.token_logprobs))
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0
    assert "".join(lp.tokens) == out.choices[0].text


def test_echo_prepends_the_prompt_and_its_logprobs(client, model):
    out = client.completions.create(model=model, prompt=PROMPT, echo=True, logprobs=1,
                                    temperature=0.0, max_tokens=3)
    choice = out.choices[0]
    assert choice.text.startswith(PROMPT) and len(choice.text) > len(PROMPT)
    assert len(choice.logprobs.tokens) == out.usage.prompt_tokens + out.usage.completion_tokens
    assert choice.logprobs.token_logprobs[0] is None
    assert all(x is not None for x in choice.logprobs.token_logprobs[1:])
    texts, _, _ = stream_text(client, model, prompt=PROMPT, echo=True, temperature=0.0,
                              max_tokens=3)
    assert texts == {0: choice.text}


def test_seed_makes_sampling_repeatable(client, model):
    def sample():
        return client.completions.create(model=model, prompt=PROMPT, temperature=1.0, seed=1234,
                                         max_tokens=8).choices[0].text
    assert sample() == sample()


def test_token_id_prompts_and_lists(client, model, server):
    prompts = [PROMPT, "The capital of France is"]
    ids = [httpx.post(server.url + "/tokenize", json={"prompt": p}).json()["tokens"]
           for p in prompts]
    by_text = client.completions.create(model=model, prompt=prompts, **GREEDY)
    assert [c.index for c in by_text.choices] == [0, 1]
    one = client.completions.create(model=model, prompt=ids[0], **GREEDY)
    assert one.choices[0].text == by_text.choices[0].text
    many = client.completions.create(model=model, prompt=ids, **GREEDY)
    assert [c.text for c in many.choices] == [c.text for c in by_text.choices]
    assert many.usage.prompt_tokens == len(ids[0]) + len(ids[1])


def test_allowed_token_ids_and_bad_words(client, model, server):
    plain = client.completions.create(model=model, prompt="The capital of France is",
                                      logprobs=0, **GREEDY)
    assert "Paris" in plain.choices[0].text
    banned = client.completions.create(model=model, prompt="The capital of France is",
                                       extra_body={"bad_words": ["Paris"]}, **GREEDY)
    assert "Paris" not in banned.choices[0].text
    words = httpx.post(server.url + "/tokenize", json={"prompt": " the of",
                                                       "add_special_tokens": False}).json()
    allowed = client.completions.create(model=model, prompt="The capital of France is",
                                        extra_body={"allowed_token_ids": words["tokens"]},
                                        **GREEDY)
    assert set(allowed.choices[0].text.split()) <= {"the", "of"}


def test_truncate_prompt_tokens_keeps_the_last_tokens(client, model, server):
    long_prompt = "One, two, three, four, five, six, seven, eight, nine, ten, eleven,"
    ids = httpx.post(server.url + "/tokenize", json={"prompt": long_prompt}).json()["tokens"]
    cut = client.completions.create(model=model, prompt=long_prompt,
                                    extra_body={"truncate_prompt_tokens": 6}, **GREEDY)
    same = client.completions.create(model=model, prompt=ids[-6:], **GREEDY)
    assert cut.usage.prompt_tokens == 6 and cut.choices[0].text == same.choices[0].text
    chat = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": long_prompt}], max_tokens=2,
        extra_body={"truncate_prompt_tokens": 9})
    assert chat.usage.prompt_tokens == 9
    bad = httpx.post(server.url + "/v1/completions", json={
        "prompt": long_prompt, "max_tokens": 2, "truncate_prompt_tokens": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "truncate_prompt_tokens"


def test_prompt_logprobs_of_completions_and_chat(client, model, server):
    body = {"model": model, "prompt": PROMPT, "max_tokens": 1, "temperature": 0}
    reply = httpx.post(server.url + "/v1/completions", json={**body, "prompt_logprobs": 2},
                       timeout=60).json()
    entries = reply["choices"][0]["prompt_logprobs"]
    echo = client.completions.create(echo=True, logprobs=2, **body).choices[0].logprobs
    ids = httpx.post(server.url + "/tokenize", json={"prompt": PROMPT}).json()["tokens"]
    assert len(entries) == len(ids) == reply["usage"]["prompt_tokens"] and entries[0] is None
    for token_id, entry, want in zip(ids[1:], entries[1:], echo.token_logprobs[1:]):
        assert entry[str(token_id)]["logprob"] == pytest.approx(want, abs=1e-5)
        assert len(entry) <= 3 and {e["rank"] for e in entry.values()} >= {1, 2}
    plain = httpx.post(server.url + "/v1/completions", json=body, timeout=60).json()
    assert "prompt_logprobs" not in plain["choices"][0]  # not asked for: left out
    chat = httpx.post(server.url + "/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1, "prompt_logprobs": 0})
    chat = chat.json()
    assert len(chat["prompt_logprobs"]) == chat["usage"]["prompt_tokens"]
    assert all(len(e) == 1 for e in chat["prompt_logprobs"][1:])  # the prompt's token alone
    streamed = httpx.post(server.url + "/v1/completions",
                          json={**body, "prompt_logprobs": 1, "stream": True}, timeout=60)
    assert streamed.status_code == 400 and streamed.json()["error"]["param"] == "prompt_logprobs"


def test_continuous_usage_stats_count_each_choices_tokens(client, model):
    options = {"include_usage": True, "continuous_usage_stats": True}
    chunks = list(client.completions.create(model=model, prompt=PROMPT, stream=True, n=2,
                                            stream_options=options, **GREEDY))
    counts: dict[int, list[int]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            assert chunk.usage.total_tokens == chunk.usage.prompt_tokens + \
                chunk.usage.completion_tokens
            counts.setdefault(choice.index, []).append(chunk.usage.completion_tokens)
    assert set(counts) == {0, 1}
    assert all(c == sorted(c) and c[-1] == GREEDY["max_tokens"] for c in counts.values())
    assert chunks[-1].usage.completion_tokens == 2 * GREEDY["max_tokens"]  # the final tally
    chat = [c.usage.completion_tokens for c in client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hi"}], stream=True, max_tokens=5,
        stream_options=options, extra_body={"ignore_eos": True})
        if c.choices and c.choices[0].finish_reason is None and c.usage]
    assert chat == sorted(set(chat)) and chat[-1] <= 5 and len(chat) >= 3
