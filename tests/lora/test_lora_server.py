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


def test_adapters_load_and_unload_while_serving(base, adapters, lora_server, tmp_path):
    url = lora_server.url
    refused = httpx.post(url + "/v1/load_lora_adapter",
                         json={"lora_name": "new", "lora_path": adapters[0].lora_path})
    assert refused.status_code == 400 and "--allow-runtime-lora-updating" in refused.text
    args = ["--model", base, "--enable-lora", "--allow-runtime-lora-updating", *ARGS]
    with ServerThread(args) as server:
        def post(path: str, **body) -> httpx.Response:
            return httpx.post(server.url + path, json=body, timeout=60)

        def complete(model: str) -> httpx.Response:
            return post("/v1/completions", model=model, prompt=PROMPT, max_tokens=10,
                        temperature=0, ignore_eos=True)

        loaded = post("/v1/load_lora_adapter", lora_name="late", lora_path=adapters[1].lora_path)
        assert loaded.status_code == 200, loaded.text
        assert "late" in [c["id"] for c in httpx.get(server.url + "/v1/models").json()["data"]]
        with_lora = complete("late").json()["choices"][0]["text"]
        want = complete(base).json()["choices"][0]["text"]
        assert with_lora != want  # the adapter is in use
        again = post("/v1/load_lora_adapter", lora_name="late", lora_path=adapters[0].lora_path)
        assert again.status_code == 400
        bad = post("/v1/load_lora_adapter", lora_name="bad", lora_path=str(tmp_path))
        assert bad.status_code == 400 and "no LoRA adapter" in bad.json()["error"]["message"]
        assert post("/v1/unload_lora_adapter", lora_name="late").status_code == 200
        assert complete("late").status_code == 404
        assert post("/v1/unload_lora_adapter", lora_name="late").status_code == 404
        reloaded = post("/v1/load_lora_adapter", lora_name="late2",
                        lora_path=adapters[1].lora_path)
        assert reloaded.status_code == 200
        assert complete("late2").json()["choices"][0]["text"] == with_lora


def test_metrics_name_the_adapters_in_use(lora_server):
    httpx.post(lora_server.url + "/v1/completions", timeout=60,
               json={"model": "every", "prompt": PROMPT, "max_tokens": 2})
    metrics = httpx.get(lora_server.url + "/metrics").text
    assert 'inference_engine:lora_requests_info{max_lora="2"' in metrics


def test_lora_modules_take_vllms_json_form_too():
    from inference_engine.entrypoints.openai.cli_args import lora_requests_from, make_arg_parser
    args = make_arg_parser().parse_args(["--enable-lora", "--lora-modules", "a=/x",
                                         '{"name": "b", "path": "/y"}'])
    loras = lora_requests_from(args)
    assert [(r.lora_name, r.lora_int_id, r.lora_path) for r in loras.values()] == [
        ("a", 1, "/x"), ("b", 2, "/y")]
    with pytest.raises(ValueError, match="must differ"):
        lora_requests_from(make_arg_parser().parse_args(
            ["--enable-lora", "--lora-modules", "a=/x", "a=/y"]))
