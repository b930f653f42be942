"""Structured outputs on a tiny random Llama with a byte-level tokenizer, on the CPU and on a
GPU (async scheduling and CUDA graphs there): random weights follow every constraint, and
requests without one are unchanged beside them."""
import json
import re

import pytest
import torch

from inference_engine import LLM, SamplingParams
from utils.byte_tokenizer import write_byte_tokenizer
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint

pytest.importorskip("xgrammar")
DEVICES = ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")])]
SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"},
                                           "tag": {"type": "string", "maxLength": 6}},
          "required": ["ok", "tag"], "additionalProperties": False}
CODE = r"[A-Z]{2}-[0-9]{3}"


@pytest.fixture(scope="module")
def byte_checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tiny-bytes")
    config = tiny_llama_config(vocab_size=512, hidden_size=128, intermediate_size=256,
                               head_dim=32, max_position_embeddings=512)
    write_hf_checkpoint(path, config, tokenizer=False)
    write_byte_tokenizer(path, eos_token_id=2)
    return str(path)


def requests(seed: int) -> tuple[list[str], list[SamplingParams]]:
    constraints = [{"json": SCHEMA}, {"regex": CODE}, {"choice": ["alpha", "beta", "gamma"]},
                   None, {"grammar": 'root ::= "x" [0-9] [0-9]? "!"'}, None]
    prompts = [f"request {i}: " + "abc " * (i * 7 % 23) for i in range(len(constraints))]
    params = [SamplingParams(temperature=0.0 if i % 2 else 1.0, seed=seed + i, max_tokens=64,
                             structured_outputs=c, ignore_eos=c is None)
              for i, c in enumerate(constraints)]
    return prompts, params


def check(outputs, params) -> None:
    for out, p in zip(outputs, params):
        text, structured = out.outputs[0].text, p.structured_outputs
        if structured is None:
            continue
        if out.outputs[0].finish_reason == "length":  # random weights may ramble inside a string
            assert structured.kind == "json", text
            continue
        if structured.kind == "json":
            value = json.loads(text)
            assert set(value) == {"ok", "tag"} and isinstance(value["ok"], bool)
        elif structured.kind == "regex":
            assert re.fullmatch(CODE, text)
        elif structured.kind == "choice":
            assert text in structured.choice
        else:
            assert re.fullmatch(r"x[0-9][0-9]?!", text)


@pytest.mark.parametrize("device", DEVICES)
def test_random_weights_keep_to_their_constraints(byte_checkpoint, device):
    llm = LLM(byte_checkpoint, dtype="float32", device=device, max_model_len=512,
              num_gpu_blocks_override=256 if device == "cuda" else None,
              cpu_kv_cache_space_gib=0.1)
    try:
        prompts, params = requests(seed=3)
        outputs = llm.generate(prompts, params, use_tqdm=False)
        check(outputs, params)
        alone = llm.generate([prompts[3], prompts[5]], [params[3], params[5]], use_tqdm=False)
        assert [o.outputs[0].token_ids for o in alone] == [
            outputs[3].outputs[0].token_ids, outputs[5].outputs[0].token_ids]
        blocks = llm.llm_engine.scheduler.block_manager
        assert blocks.get_num_free_blocks() == blocks.allocator.num_blocks
    finally:
        llm.llm_engine.executor.shutdown()
