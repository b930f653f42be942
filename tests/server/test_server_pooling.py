"""POST /v1/embeddings on a sentence-transformers checkpoint (a tiny random Llama with
modules.json and a mean-pooling 1_Pooling/config.json): mean pooling, as transformers' mean of
the last hidden states, normalized; --pooling-type overrides the checkpoint."""
import httpx
import pytest
import torch

from utils.hf_checkpoint import (tiny_llama_config, write_hf_checkpoint,
                                 write_sentence_transformers_pooling)
from utils.server import ServerThread

INPUTS = [[5, 17, 29, 41, 53, 65, 77], [900, 31, 4, 4, 4, 120, 7, 8, 9, 10, 11]]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    path = write_hf_checkpoint(tmp_path_factory.mktemp("st"), tiny_llama_config(), seed=5)
    return write_sentence_transformers_pooling(path, pooling_mode_mean_tokens=True)


@pytest.mark.parametrize("flags, pooling", [([], "MEAN"), (["--pooling-type", "CLS"], "CLS")])
def test_the_checkpoint_pooling_or_the_flag(checkpoint, flags, pooling):
    from transformers import AutoModelForCausalLM
    args = ["--model", checkpoint, "--dtype", "float32", "--max-model-len", "256",
            "--cpu-kv-cache-space-gib", "0.1", *flags]
    with ServerThread(args) as server:
        assert server.engine_client.config.model_config.pooling_type.value == pooling
        reply = httpx.post(server.url + "/v1/embeddings", json={"input": INPUTS}, timeout=60)
    assert reply.status_code == 200, reply.text
    hf = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).model
    for ids, data in zip(INPUTS, reply.json()["data"]):
        with torch.no_grad():
            states = hf(torch.tensor([ids])).last_hidden_state[0]
        expected = states.mean(0) if pooling == "MEAN" else states[0]
        torch.testing.assert_close(torch.tensor(data["embedding"]),
                                   torch.nn.functional.normalize(expected, dim=0),
                                   rtol=1e-4, atol=1e-5)
