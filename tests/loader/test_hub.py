"""Hub ids: a model named `org/name` is downloaded through huggingface_hub (here from a local
stand-in for the hub, utils/hub_standin.py), found in the cache afterwards with the hub gone,
pinned to a revision, and refused with a clear error when it cannot be had."""
import io
import json
import os
import subprocess
import sys

import httpx
import pytest
import torch
from huggingface_hub import constants
from safetensors.torch import load_file

from inference_engine import LLM, SamplingParams
from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.transformers_utils.hub import download_gguf, download_model, is_hub_id
from utils.gguf_file import Q, write_llama_gguf
from utils.hf_checkpoint import random_state_dict, tiny_llama_config, write_hf_checkpoint
from utils.hub_standin import StandInHub
from utils.server import SERVER_ARGS, ServerProcess

GREEDY = SamplingParams(temperature=0.0, max_tokens=8)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return write_hf_checkpoint(tmp_path_factory.mktemp("tiny"), tiny_llama_config(), seed=7)


@pytest.fixture
def hub(checkpoint, monkeypatch):
    """The stand-in, serving the tiny checkpoint as `org/tiny` (main and tag v1, which has
    another max_position_embeddings), `org/gated` behind its token, `org/no-weights`, and
    `org/pickled` (its weights as pytorch_model.bin)."""
    hub = StandInHub()
    hub.add_folder("org/tiny", checkpoint)
    files = {name: open(os.path.join(checkpoint, name), "rb").read()
             for name in os.listdir(checkpoint)}
    older = json.loads(files["config.json"])
    older["max_position_embeddings"] = 256
    hub.add("org/tiny", {**files, "config.json": json.dumps(older).encode()}, revision="v1")
    hub.add_folder("org/gated", checkpoint, gated=True)
    hub.add("org/no-weights", {"config.json": files["config.json"]})
    pickled = io.BytesIO()
    torch.save(load_file(os.path.join(checkpoint, "model.safetensors")), pickled)
    hub.add("org/pickled", {"config.json": files["config.json"],
                            "pytorch_model.bin": pickled.getvalue()})
    hub.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # (tests/conftest.py sets it)
    yield hub
    hub.stop()


def test_which_names_are_hub_ids(tmp_path):
    assert is_hub_id("meta-llama/Llama-3.1-8B-Instruct") and is_hub_id("gpt2")
    assert not is_hub_id(str(tmp_path))  # a folder that exists
    assert not is_hub_id("llama3-8b")  # a preset
    assert not is_hub_id("/no/such/folder") and not is_hub_id("../up/there")
    assert not is_hub_id("model.gguf") and not is_hub_id("a/b/c")


def test_downloads_once_then_serves_from_the_cache_with_the_hub_gone(hub, tmp_path):
    folder = download_model("org/tiny", download_dir=str(tmp_path))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(folder))
    assert hub.requests["org/tiny/model.safetensors"] == 1
    assert download_model("org/tiny", download_dir=str(tmp_path)) == folder
    assert hub.requests["org/tiny/model.safetensors"] == 1  # the cache's copy
    hub.stop()
    assert download_model("org/tiny", download_dir=str(tmp_path)) == folder


def test_an_engine_on_a_hub_id_matches_the_local_folder(hub, checkpoint, tmp_path):
    local = LLM(checkpoint, dtype="float32", cpu_kv_cache_space_gib=0.05)
    expected = [o.outputs[0].token_ids for o in local.generate(["Hello there"], GREEDY)]
    local.shutdown()
    remote = LLM("org/tiny", dtype="float32", cpu_kv_cache_space_gib=0.05,
                 download_dir=str(tmp_path))
    try:
        assert remote.llm_engine.config.model_config.served_model_name == "org/tiny"
        assert [o.outputs[0].token_ids
                for o in remote.generate(["Hello there"], GREEDY)] == expected
    finally:
        remote.shutdown()


def test_pickled_weights_are_fetched_where_no_safetensors_exist(hub, tmp_path):
    folder = download_model("org/pickled", download_dir=str(tmp_path))
    assert sorted(os.listdir(folder)) == ["config.json", "pytorch_model.bin"]
    assert "org/tiny/pytorch_model.bin" not in hub.requests


def test_a_revision_is_pinned(hub, tmp_path):
    config = EngineArgs(model="org/tiny", revision="v1",
                        download_dir=str(tmp_path)).create_engine_config().model_config
    assert config.hf_config.max_position_embeddings == 256
    main = EngineArgs(model="org/tiny", download_dir=str(tmp_path)).create_engine_config()
    assert main.model_config.hf_config.max_position_embeddings != 256
    with pytest.raises(FileNotFoundError, match="no revision 'v9'"):
        download_model("org/tiny", "v9", download_dir=str(tmp_path))


def test_a_gated_repository_needs_its_token(hub, tmp_path):
    with pytest.raises(PermissionError, match="gated.*HF_TOKEN or --hf-token"):
        download_model("org/gated", download_dir=str(tmp_path))
    folder = download_model("org/gated", download_dir=str(tmp_path), token=hub.token)
    assert "model.safetensors" in os.listdir(folder)


def test_unknown_repositories_and_repositories_without_weights_are_refused(hub, tmp_path):
    with pytest.raises(FileNotFoundError, match="no model 'org/missing' on the hub"):
        download_model("org/missing", download_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no weights"):
        download_model("org/no-weights", download_dir=str(tmp_path))


def test_offline_with_nothing_cached_says_so(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FileNotFoundError, match="not in the local cache"):
        download_model("org/tiny", download_dir=str(tmp_path))


def test_serve_a_hub_id_then_again_from_the_cache_offline(hub, tmp_path):
    """`serve org/name` end to end: downloaded from the stand-in, then, the hub gone and
    HF_HUB_OFFLINE=1, served again from the cache."""
    args = ["org/tiny", *SERVER_ARGS, "--download-dir", str(tmp_path / "cache")]
    url, answers = hub.url, []
    for offline in ("0", "1"):
        server = ServerProcess(args, str(tmp_path / f"log{offline}"),
                               env={"HF_ENDPOINT": url, "HF_HUB_OFFLINE": offline})
        try:
            server.wait_ready()
            models = httpx.get(server.url + "/v1/models").json()
            assert [m["id"] for m in models["data"]] == ["org/tiny"]
            answer = httpx.post(server.url + "/v1/completions", timeout=60, json={
                "model": "org/tiny", "prompt": "Hello there", "max_tokens": 4,
                "temperature": 0})
            assert answer.status_code == 200, answer.text
            answers.append(answer.json()["choices"][0]["text"])
        finally:
            server.stop()
        hub.stop()
    assert answers[0] == answers[1]
    assert hub.requests["org/tiny/model.safetensors"] == 1


@pytest.fixture(scope="module")
def gguf_repo(tmp_path_factory) -> dict[str, bytes]:
    """A GGUF repository of two quantizations of one tiny model (with the embedded model's
    tokenizer)."""
    config = tiny_llama_config(vocab_size=49152)
    weights = random_state_dict(config, seed=4)
    folder = tmp_path_factory.mktemp("gguf")
    return {name: open(write_llama_gguf(folder / name, config, weights, qtype), "rb").read()
            for name, qtype in (("tiny-F32.gguf", Q.F32), ("tiny-Q8_0.gguf", Q.Q8_0))}


def test_one_gguf_file_of_a_repository_by_its_quantization(hub, gguf_repo, tmp_path):
    hub.add("org/tiny-GGUF", gguf_repo)
    args = dict(download_dir=str(tmp_path), dtype="float32", cpu_kv_cache_space_gib=0.05)
    config = EngineArgs(model="org/tiny-GGUF:q8_0", **args).create_engine_config()
    assert config.model_config.model.endswith("tiny-Q8_0.gguf")
    assert hub.requests["org/tiny-GGUF/tiny-Q8_0.gguf"] == 1
    assert "org/tiny-GGUF/tiny-F32.gguf" not in hub.requests
    llm = LLM("org/tiny-GGUF", gguf_file="tiny-F32.gguf", **args)
    try:
        assert llm.llm_engine.config.model_config.model.endswith("tiny-F32.gguf")
        assert len(llm.generate(["Hi"], GREEDY)[0].outputs[0].token_ids) == 8
    finally:
        llm.shutdown()
    with pytest.raises(FileNotFoundError, match=r"no \*Q2_K\*.gguf file"):
        download_gguf("org/tiny-GGUF", "Q2_K", download_dir=str(tmp_path))


def test_processes_downloading_at_once_fetch_each_file_once(hub, tmp_path):
    """Replicas started together share huggingface_hub's file locks: one download a file."""
    code = ("import sys; from inference_engine.transformers_utils.hub import download_model; "
            "print(download_model('org/tiny', download_dir=sys.argv[1]))")
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for _ in range(3)]
    folders = {proc.communicate(timeout=120)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs) and len(folders) == 1
    assert hub.requests["org/tiny/model.safetensors"] == 1
