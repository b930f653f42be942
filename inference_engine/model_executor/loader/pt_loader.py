"""Weights from a checkpoint folder of PyTorch pickles (`pytorch_model.bin`, or the shards
`pytorch_model-00001-of-00002.bin` ...), as older Hugging Face repositories ship them.

Read with `torch.load(weights_only=True)`: tensors and plain containers only, so a pickle
cannot run code while it loads. Each file is read whole, one at a time."""
import glob
import os
from collections.abc import Iterator

import torch


def pt_files(folder: str) -> list[str]:
    files = sorted(glob.glob(os.path.join(folder, "pytorch_model*.bin")))
    if not files:
        raise FileNotFoundError(f"no pytorch_model*.bin files in {folder}")
    return files


def iterate_pt_weights(folder: str) -> Iterator[tuple[str, torch.Tensor]]:
    for path in pt_files(folder):
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        yield from state.items()
        del state
