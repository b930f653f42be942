"""Clients that leave abort their requests (KV blocks free within a second), and 64 concurrent
streaming clients each get the text they get alone."""
import asyncio
import re
import time

import httpx

from utils.server import engine_idle, wait_until

LONG = {"max_tokens": 400, "extra_body": {"ignore_eos": True}}
PROMPTS = ["Once upon a time", "The capital of France is", "def fibonacci(n):",
           "My favourite food is", "1, 2, 3, 4,", "The weather today", "Dear Sir or Madam,",
           "In the beginning"]


def engine_busy(server) -> bool:
    engine = server.engine_client.engine
    return bool(engine.scheduler.running) and engine.scheduler.block_manager.usage > 0


def aborted_total(server) -> float:
    text = httpx.get(server.url + "/metrics").text
    match = re.search(r'^inference_engine:request_success_total\{finished_reason="abort"\} (\S+)$',
                      text, re.M)
    return float(match.group(1)) if match else 0.0


def test_disconnect_mid_stream_aborts_and_frees_blocks(server, client, model):
    before = aborted_total(server)
    stream = client.completions.create(model=model, prompt=PROMPTS[0], stream=True, **LONG)
    chunks = iter(stream)
    next(chunks), next(chunks)
    assert engine_busy(server)
    stream.close()
    closed = time.monotonic()
    wait_until(lambda: engine_idle(server), timeout=1.0, what="blocks freed after disconnect")
    assert time.monotonic() - closed < 1.0
    assert aborted_total(server) == before + 1
    assert server.engine_client.num_open_requests == 0


def test_cancelled_request_is_aborted(server, async_client, model):
    async def cancel_midway():
        task = asyncio.create_task(async_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPTS[1]}], **LONG))
        while not engine_busy(server):
            await asyncio.sleep(0.02)
        task.cancel()
        cancelled = time.monotonic()
        while not engine_idle(server):
            await asyncio.sleep(0.02)
        await async_client.close()
        return time.monotonic() - cancelled

    assert asyncio.run(asyncio.wait_for(cancel_midway(), timeout=120)) < 1.0


def test_64_concurrent_streams_each_match_their_solo_output(server, client, async_client, model):
    greedy = {"temperature": 0.0, "max_tokens": 8}
    alone = {p: client.completions.create(model=model, prompt=p, **greedy).choices[0].text
             for p in PROMPTS}

    async def stream(prompt: str) -> str:
        text = ""
        async for chunk in await async_client.completions.create(
                model=model, prompt=prompt, stream=True, **greedy):
            text += "".join(choice.text for choice in chunk.choices)
        return text

    async def run_all() -> list[str]:
        try:
            return await asyncio.gather(*(stream(PROMPTS[i % len(PROMPTS)]) for i in range(64)))
        finally:
            await async_client.close()

    texts = asyncio.run(run_all())
    assert texts == [alone[PROMPTS[i % len(PROMPTS)]] for i in range(64)]
    assert engine_idle(server)
