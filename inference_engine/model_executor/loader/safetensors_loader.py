"""Weights from a Hugging Face checkpoint folder of safetensors files, single or sharded."""
import glob
import json
import os
from collections.abc import Iterator

import torch
from safetensors import safe_open

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"


def safetensors_files(folder: str) -> list[str]:
    """The weight files of a checkpoint folder.

    The index decides when present: some repositories also ship a consolidated copy of the
    weights (e.g. Mistral's `consolidated.safetensors`) that must not be loaded twice.
    """
    index = os.path.join(folder, INDEX_FILE)
    if os.path.isfile(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        files = [os.path.join(folder, name) for name in sorted(set(weight_map.values()))]
        missing = [p for p in files if not os.path.isfile(p)]
        if missing:
            raise FileNotFoundError(f"{index} names shards that are missing: {missing}")
        return files
    if os.path.isfile(os.path.join(folder, SINGLE_FILE)):
        return [os.path.join(folder, SINGLE_FILE)]
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        raise FileNotFoundError(f"no *.safetensors files in {folder} (other weight formats such "
                                "as pytorch_model.bin are not supported)")
    return files


def iterate_safetensors_weights(folder: str) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (name, tensor) for every tensor, in the dtype it is stored in; files are memory
    mapped, so each tensor is read only when the caller copies it."""
    for path in safetensors_files(folder):
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                # Old checkpoints saved rotary buffers; they are recomputed, never loaded.
                if name.endswith("rotary_emb.inv_freq"):
                    continue
                yield name, f.get_tensor(name)
