"""Malformed LoRA adapters are the client's error: the reader (and the check against the model's
layers) refuses each with a LoRAError naming the file and what is wrong, which the server answers
400 in OpenAI's error shape; the server goes on serving. Each case is a good adapter copied and
broken in one place, and each failed before the checks: a 500 with the exception's repr, a bare
ValueError naming no file, or (wrong shapes, sparse or meta tensors) a load that succeeded and a
first use that killed the engine loop."""
import re
import json
import shutil
import struct
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import load_file, save_file

from inference_engine.lora import LoRARequest
from inference_engine.lora.adapter import CONFIG_FILE, LoRAError, load_adapter
from inference_engine.lora.layers import checkpoint_shapes
from inference_engine.lora.manager import LoRAManager
from inference_engine.model_executor.layers.linear import (ColumnParallelLinear,
                                                           MergedColumnParallelLinear,
                                                           QKVParallelLinear, ReplicatedLinear,
                                                           RowParallelLinear)
from inference_engine.model_executor.models.llama import LlamaForCausalLM
from utils.hf_checkpoint import tiny_llama_config
from utils.server import ServerThread
from utils.tp_ranks import use_rank

pytest.importorskip("peft")
MAX_RANK = 8
ARGS = ["--dtype", "float32", "--cpu-kv-cache-space-gib", "0.1", "--max-lora-rank", str(MAX_RANK),
        "--max-loras", "2"]
SAFETENSORS, BIN = "adapter_model.safetensors", "adapter_model.bin"
Q_PROJ = "base_model.model.model.layers.0.self_attn.q_proj"
A, B = f"{Q_PROJ}.lora_A.weight", f"{Q_PROJ}.lora_B.weight"


def config(**changes):
    """adapter_config.json with `changes` (None: the key removed)."""
    def edit(folder: Path) -> None:
        values = json.loads((folder / CONFIG_FILE).read_text())
        values.update(changes)
        for key in [k for k, v in changes.items() if v is None]:
            del values[key]
        (folder / CONFIG_FILE).write_text(json.dumps(values))
    return edit


def config_bytes(data: bytes):
    return lambda folder: (folder / CONFIG_FILE).write_bytes(data)


def tensors(change):
    """`change` edits the adapter's {name: tensor} in place."""
    def edit(folder: Path) -> None:
        values = load_file(folder / SAFETENSORS)
        change(values)
        save_file({k: v.contiguous() for k, v in values.items()}, folder / SAFETENSORS)
    return edit


def weights_bytes(file: str, data: bytes):
    def edit(folder: Path) -> None:
        (folder / SAFETENSORS).unlink()
        (folder / file).write_bytes(data)
    return edit


def torch_bin(make):
    """adapter_model.bin as torch.save writes `make(good tensors)`."""
    def edit(folder: Path) -> None:
        good = load_file(folder / SAFETENSORS)
        (folder / SAFETENSORS).unlink()
        torch.save(make(good), folder / BIN)
    return edit


def safetensors_header(header: dict, data: bytes = b""):
    text = json.dumps(header).encode()
    return weights_bytes(SAFETENSORS, struct.pack("<Q", len(text)) + text + data)


def assign(name: str, value):
    """For `tensors`: tensor `name` replaced by value(tensor)."""
    return lambda values: values.__setitem__(name, value(values[name]))


# name -> (how the good adapter is broken, what the message says, whether the reader alone sees
# it: False where only the model's layer shapes show it)
CASES = {
    "config is a list": (config_bytes(b"[1, 2]"), "adapter_config.json.*not a JSON object", True),
    "config is not JSON": (config_bytes(b"{r: 8"), "adapter_config.json.*not valid JSON", True),
    "config is not UTF-8": (config_bytes(b'{"r": "\xff"}'), "adapter_config.json.*UTF-8", True),
    "config nested too deep": (config_bytes(b"[" * 100_000), "adapter_config.json.*not valid JSON",
                               True),
    "target_modules is a number": (config(target_modules=5), "target_modules", True),
    "lora_alpha is a string": (config(lora_alpha="16"), "lora_alpha", True),
    "lora_alpha is missing": (config(lora_alpha=None), "lora_alpha", True),
    "lora_alpha is too big for a float": (config(lora_alpha=10**400), "lora_alpha", True),
    "alpha_pattern is a list": (config(alpha_pattern=["q_proj"]), "alpha_pattern", True),
    "alpha_pattern's key is no regex": (config(alpha_pattern={"(": 4}), "alpha_pattern", True),
    "alpha_pattern's value is a string": (config(alpha_pattern={"q_proj": "4"}), "alpha_pattern",
                                          True),
    "rank zero": (tensors(lambda v: v.update({A: v[A][:0], B: v[B][:, :0]})), "rank 0", True),
    "safetensors of garbage": (weights_bytes(SAFETENSORS, b"\x07garbage" * 100), SAFETENSORS, True),
    "safetensors header of a huge size": (weights_bytes(SAFETENSORS, struct.pack("<Q", 2**62)),
                                          SAFETENSORS, True),
    "safetensors tensor of a huge shape": (safetensors_header(
        {A: {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, b"\0" * 8),
        SAFETENSORS, True),
    "lora_B is 1-D": (tensors(assign(B, lambda b: b[:, 0])), "lora_B.*2-D", True),
    "lora_A is 3-D": (tensors(assign(A, lambda a: a[:, None])), "lora_A.*2-D", True),
    "bin of garbage": (weights_bytes(BIN, b"garbage" * 100), BIN, True),
    "bin of a list": (torch_bin(lambda good: list(good.values())), f"{BIN}.*dict", True),
    "bin of numbers": (torch_bin(lambda good: {k: 1.0 for k in good}), f"{BIN}.*tensor", True),
    "bin with a number as name": (torch_bin(lambda good: {1: t for t in good.values()}),
                                  f"{BIN}.*name", True),
    "bin of a sparse tensor": (torch_bin(lambda good: {**good, A: good[A].to_sparse()}),
                               "dense", True),
    "bin of a meta tensor": (torch_bin(lambda good: {**good, A: good[A].to("meta")}), "meta",
                             True),
    "lora_A of float4": (tensors(assign(A, lambda a: a.to(torch.uint8).view(
        torch.float4_e2m1fn_x2))), "float4_e2m1fn_x2", True),
    "lora_A of the wrong input size": (tensors(assign(A, lambda a: torch.zeros(8, 65))),
                                       r"lora_A.*\[8, 65\].*\[r, 64\]", False),
    "lora_B of the wrong output size": (tensors(assign(B, lambda b: torch.zeros(63, 8))),
                                        r"lora_B.*\[63, 8\].*\[64, r\]", False),
}


def broken(good: str, folder: Path, case: str) -> str:
    shutil.copytree(good, folder)
    CASES[case][0](folder)
    return str(folder)


@pytest.fixture(scope="module")
def manager() -> LoRAManager:
    return LoRAManager(LlamaForCausalLM(tiny_llama_config()), max_loras=2, max_rank=MAX_RANK,
                       max_cpu_loras=2)


@pytest.mark.parametrize("case", [c for c, (_, _, reader) in CASES.items() if reader])
def test_the_reader_refuses(adapters, tmp_path, case):
    path = broken(adapters[0].lora_path, tmp_path / "adapter", case)
    with pytest.raises(LoRAError, match=CASES[case][1]):
        load_adapter(path, LlamaForCausalLM.packed_modules, MAX_RANK)


@pytest.mark.parametrize("case", CASES)
def test_the_manager_refuses_and_keeps_nothing(manager, adapters, tmp_path, case):
    path = broken(adapters[0].lora_path, tmp_path / "adapter", case)
    with pytest.raises(LoRAError, match=CASES[case][1]):
        manager.add(LoRARequest(case, 99, path))
    assert 99 not in manager.on_host


@pytest.mark.parametrize("fields", [{"r": "8"}, {"r": 0}, {"r": -8}, {"rank_pattern": [8]}])
def test_config_fields_have_peft_types(adapters, tmp_path, fields):
    """Fields we don't use (the tensors give the rank) were accepted whatever they held; PEFT
    refuses such an adapter, and so does the reader now."""
    shutil.copytree(adapters[0].lora_path, tmp_path / "adapter")
    config(**fields)(tmp_path / "adapter")
    with pytest.raises(LoRAError, match=f"{CONFIG_FILE}: {next(iter(fields))} must be"):
        load_adapter(str(tmp_path / "adapter"), LlamaForCausalLM.packed_modules, MAX_RANK)


@pytest.mark.parametrize("world", [1, 2, 4])
def test_the_shapes_checked_are_the_whole_layers_on_every_rank(monkeypatch, world):
    """Each rank checks an adapter against the unsharded sizes, so all ranks agree with the
    driver, which checked it first."""
    for rank in range(world):
        use_rank(monkeypatch, rank, world)
        # 8 query heads and 2 KV heads of 4: KV heads are replicated over 4 ranks
        assert checkpoint_shapes(QKVParallelLinear(16, 4, 8, 2)) == {
            None: (48, 16), "q": (32, 16), "k": (8, 16), "v": (8, 16)}
        assert checkpoint_shapes(MergedColumnParallelLinear(16, [24, 24])) == {
            None: (48, 16), 0: (24, 16), 1: (24, 16)}
        assert checkpoint_shapes(ColumnParallelLinear(16, 24)) == {None: (24, 16)}
        assert checkpoint_shapes(RowParallelLinear(24, 16)) == {None: (16, 24)}
        assert checkpoint_shapes(ReplicatedLinear(16, 24, bias=False)) == {None: (24, 16)}


def test_a_file_is_no_adapter_folder(adapters):
    file = str(Path(adapters[0].lora_path) / SAFETENSORS)
    with pytest.raises(LoRAError, match="not a folder"):
        load_adapter(file, LlamaForCausalLM.packed_modules, MAX_RANK)


def test_the_server_answers_400_and_goes_on(base, adapters, tmp_path):
    args = ["--model", base, "--enable-lora", "--allow-runtime-lora-updating", *ARGS]
    with ServerThread(args) as server:
        def post(path: str, **body) -> httpx.Response:
            return httpx.post(server.url + path, json=body, timeout=60)

        bad = {case: (broken(adapters[0].lora_path, tmp_path / f"case{i}", case), message)
               for i, (case, (_, message, _)) in enumerate(CASES.items())}
        bad["a file"] = (str(Path(adapters[0].lora_path) / SAFETENSORS), "not a folder")
        for i, (case, (path, message)) in enumerate(bad.items()):
            reply = post("/v1/load_lora_adapter", lora_name=f"bad{i}", lora_path=path)
            assert reply.status_code == 400, (case, reply.text)
            error = reply.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, case
            assert error["param"] == "lora_path" and error["type"] == "invalid_request_error"
            assert path in error["message"] and re.search(message, error["message"]), (
                case, error["message"])
        names = [c["id"] for c in httpx.get(server.url + "/v1/models").json()["data"]]
        assert names == [base]
        loaded = post("/v1/load_lora_adapter", lora_name="good", lora_path=adapters[0].lora_path)
        assert loaded.status_code == 200, loaded.text
        for model in (base, "good"):
            reply = post("/v1/completions", model=model, prompt="Once upon a time", max_tokens=4,
                         ignore_eos=True)
            assert reply.status_code == 200, reply.text
            assert reply.json()["choices"][0]["text"]
