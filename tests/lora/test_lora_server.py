"""LoRA adapters through the server: `--lora-modules NAME=PATH` serves each under its own model
name (listed by /v1/models with its base as parent); a request naming it gets the offline
engine's text with that adapter, and its response names it; unknown names are 404; a bad
adapter or --lora-modules without --enable-lora stops the start."""
import httpx
import openai
import pytest

from inference_engine import LLM, SamplingParams
from utils.server import ServerThread

pytest.importorskip("peft")
ARGS = ["--dtype", "float32", "--cpu-kv-cache-space-gib", "0.1", "--max-lora-rank", "8",
        "--max-loras", "2"]
PROMPT = "Once upon a time"


@pytest.fixture(scope="module")
def lora_server(base, adapters):
    modules = [f"{a.lora_name}={a.lora_path}" for a in adapters]
    with ServerThread(["--model", base, "--enable-lora", "--lora-modules", *modules, *ARGS]) as s:
        yield s


def test_models_lists_the_adapters(lora_server, base, adapters):
    cards = httpx.get(lora_server.url + "/v1/models").json()["data"]
    assert [c["id"] for c in cards] == [base, "every", "some"]
    assert all(c["parent"] == base for c in cards[1:]) and cards[0]["parent"] is None
    assert cards[1]["root"] == adapters[0].lora_path


def test_each_adapter_answers_as_the_engine_does(lora_server, base, adapters):
    llm = LLM(base, dtype="float32", cpu_kv_cache_space_gib=0.1, enable_lora=True,
              max_lora_rank=8)
    params = SamplingParams(temperature=0, max_tokens=10, ignore_eos=True)
    client = openai.OpenAI(base_url=lora_server.url + "/v1", api_key="unused", max_retries=0,
                           timeout=120)
    texts = {}
    for name, lora in [(base, None), ("every", adapters[0]), ("some", adapters[1])]:
        want = llm.generate([PROMPT], params, use_tqdm=False, lora_request=lora)[0].outputs[0]
        reply = client.completions.create(model=name, prompt=PROMPT, max_tokens=10,
                                          temperature=0, extra_body={"ignore_eos": True})
        assert reply.model == name and reply.choices[0].text == want.text
        chunks = list(client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": PROMPT}], max_tokens=4,
            stream=True))
        assert {c.model for c in chunks} == {name}
        texts[name] = want.text
    assert len(set(texts.values())) == 3  # the adapters change the answer


def test_an_unknown_model_is_404(lora_server):
    reply = httpx.post(lora_server.url + "/v1/completions",
                       json={"model": "nope", "prompt": PROMPT, "max_tokens": 1})
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "model_not_found"


def test_bad_lora_modules_stop_the_start(base, adapters, tmp_path):
    with pytest.raises(ValueError, match="needs --enable-lora"):
        ServerThread(["--model", base, "--lora-modules", f"x={adapters[0].lora_path}", *ARGS])
    with pytest.raises(SystemExit):  # argparse: not NAME=PATH
        ServerThread(["--model", base, "--enable-lora", "--lora-modules", "no-path", *ARGS])
    server = ServerThread(["--model", base, "--enable-lora", "--lora-modules",
                           f"x={tmp_path}", *ARGS])  # no adapter there
    try:
        with pytest.raises(RuntimeError, match="failed to start"):
            server.start()
    finally:
        server.stop()
