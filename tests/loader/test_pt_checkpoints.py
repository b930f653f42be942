"""Checkpoints of PyTorch pickles (`pytorch_model*.bin`): read as their safetensors twins are,
never running code a pickle carries."""
import os
import pickle

import pytest
import torch
from safetensors.torch import load_file

from inference_engine.model_executor.loader import iterate_weights
from inference_engine.transformers_utils.load_format import resolve_load_format
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint


def as_pickles(folder: str, num_shards: int) -> dict[str, torch.Tensor]:
    """Rewrites the checkpoint's safetensors as `num_shards` .bin files; returns the weights."""
    weights = {}
    for name in os.listdir(folder):
        if name.endswith(".safetensors") or name.endswith(".safetensors.index.json"):
            if name.endswith(".safetensors"):
                weights.update(load_file(os.path.join(folder, name)))
            os.remove(os.path.join(folder, name))
    names = sorted(weights)
    for i in range(num_shards):
        shard = {n: weights[n] for n in names[i::num_shards]}
        file = ("pytorch_model.bin" if num_shards == 1
                else f"pytorch_model-{i + 1:05d}-of-{num_shards:05d}.bin")
        torch.save(shard, os.path.join(folder, file))
    return weights


@pytest.mark.parametrize("num_shards", [1, 3])
def test_pickled_weights_are_read_whole(tmp_path, num_shards):
    folder = write_hf_checkpoint(tmp_path, tiny_llama_config(), tokenizer=False)
    expected = as_pickles(folder, num_shards)
    assert resolve_load_format(folder, "auto") == resolve_load_format(folder, "pt") == "pt"
    with pytest.raises(FileNotFoundError, match=r"no \*.safetensors files"):
        resolve_load_format(folder, "safetensors")
    loaded = dict(iterate_weights(folder, "auto", None))
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[n], expected[n]) for n in expected)


def test_safetensors_win_over_pickles_in_one_folder(tmp_path):
    folder = write_hf_checkpoint(tmp_path, tiny_llama_config(), tokenizer=False)
    torch.save({"bogus.weight": torch.zeros(2)}, os.path.join(folder, "pytorch_model.bin"))
    assert resolve_load_format(folder, "auto") == "safetensors"


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    folder = write_hf_checkpoint(tmp_path, tiny_llama_config(), tokenizer=False)
    as_pickles(folder, 1)
    torch.save({"model.norm.weight": RunsCode()}, os.path.join(folder, "pytorch_model.bin"))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        dict(iterate_weights(folder, "auto", None))
