"""/v1/chat/completions through the official openai client: the chat template, plain and
streamed answers, logprobs, and the template options (override, generation prompt, continuing
the last message)."""
import httpx

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0.0, "max_tokens": 8}


def tokenize(server, **body) -> list[int]:
    response = httpx.post(server.url + "/tokenize", json=body)
    assert response.status_code == 200, response.text
    return response.json()["tokens"]


def detokenize(server, tokens: list[int]) -> str:
    return httpx.post(server.url + "/detokenize", json={"tokens": tokens}).json()["prompt"]


def test_plain_chat_is_shaped_like_openai(client, model, server):
    out = client.chat.completions.create(model=model, messages=MESSAGES, **GREEDY)
    assert out.object == "chat.completion" and out.id.startswith("chatcmpl-")
    choice = out.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("length", "stop")
    assert out.usage.prompt_tokens == len(tokenize(server, messages=MESSAGES))
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_streamed_chat_equals_plain_chat(client, model):
    plain = client.chat.completions.create(model=model, messages=MESSAGES, **GREEDY)
    chunks = list(client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        **GREEDY))
    assert chunks[0].object == "chat.completion.chunk"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.role is None for c in chunks[1:-1])
    text = "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
    assert text == plain.choices[0].message.content
    reasons = [c.choices[0].finish_reason for c in chunks[:-1] if c.choices[0].finish_reason]
    assert reasons == [plain.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage


def test_streamed_n_choices_each_start_with_the_role(client, model):
    chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, n=2, seed=3,
                                                 temperature=1.0, max_tokens=3, stream=True))
    roles = {c.choices[0].index for c in chunks if c.choices[0].delta.role == "assistant"}
    finished = {c.choices[0].index for c in chunks if c.choices[0].finish_reason}
    assert roles == finished == {0, 1}


def test_max_completion_tokens_and_text_content_parts(client, model):
    parts = [{"role": "user", "content": [{"type": "text", "text": MESSAGES[0]["content"]}]}]
    out = client.chat.completions.create(model=model, messages=parts, temperature=0.0,
                                         max_completion_tokens=3)
    assert out.usage.completion_tokens <= 3
    plain = client.chat.completions.create(model=model, messages=MESSAGES, temperature=0.0,
                                           max_tokens=3)
    assert out.choices[0].message.content == plain.choices[0].message.content


def test_logprobs_and_top_logprobs(client, model):
    out = client.chat.completions.create(model=model, messages=MESSAGES, logprobs=True,
                                         top_logprobs=2, temperature=0.0, max_tokens=3)
    content = out.choices[0].logprobs.content
    assert len(content) == out.usage.completion_tokens
    for entry in content:
        assert len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].token == entry.token  # greedy picks the top one
        assert entry.bytes == list(entry.token.encode())
    assert "".join(e.token for e in content) == out.choices[0].message.content


def test_chat_template_override_renders_the_prompt(client, model, server):
    template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    ids = tokenize(server, messages=MESSAGES, chat_template=template)
    assert detokenize(server, ids) == MESSAGES[0]["content"] + "\n"
    chat = client.chat.completions.create(model=model, messages=MESSAGES,
                                          extra_body={"chat_template": template}, **GREEDY)
    completion = client.completions.create(model=model, prompt=ids, **GREEDY)
    assert chat.choices[0].message.content == completion.choices[0].text


def test_generation_prompt_and_continue_final_message(client, model, server):
    with_prompt = detokenize(server, tokenize(server, messages=MESSAGES))
    without = detokenize(server, tokenize(server, messages=MESSAGES,
                                          add_generation_prompt=False))
    assert with_prompt.startswith(without) and with_prompt[len(without):].strip() == (
        "<|im_start|>assistant")
    partial = MESSAGES + [{"role": "assistant", "content": "The capital of France is"}]
    rendered = detokenize(server, tokenize(server, messages=partial, continue_final_message=True))
    assert rendered.endswith("The capital of France is")
    out = client.chat.completions.create(model=model, messages=partial, temperature=0.0,
                                         max_tokens=4,
                                         extra_body={"continue_final_message": True,
                                                     "add_generation_prompt": False})
    assert out.choices[0].message.content
