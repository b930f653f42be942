"""One step's model inputs: what every rank needs to run the model, their trip to the other
ranks and to the device, and the layouts they are built with (engine/step_input.py; the
worker's profiling run too)."""
import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import torch

from inference_engine.model_executor.forward_context import AttentionMetadata


@dataclass
class ModelInput:
    """One step's model inputs, built by the driver as CPU tensors and sent as they are to the
    other ranks, which need no SequenceGroup objects to run the model."""
    input_ids: torch.Tensor
    positions: torch.Tensor
    attn: AttentionMetadata
    logits_rows: torch.Tensor  # the hidden-state rows whose logits the sampler reads
    blocks_to_copy: list[tuple[int, int]]
    # [k, 2]: (row of input_ids, index among the previous step's sampled tokens) for decode rows
    # whose input the host has not read yet (async scheduling); the copy happens on the device.
    inputs_from_samples: torch.Tensor | None = None
    return_hidden: bool = False  # embedding requests pool rows of the step's hidden states
    # The step's LoRA adapters and each token's adapter id (lora/step_input.py); None without.
    # The ids stay on the host, where the mask is built from them.
    lora_requests: dict | None = None
    lora_ids: torch.Tensor | None = None

    # Pickled once a step for every other rank: as numpy arrays the tensors travel as raw bytes,
    # several times faster than torch's own pickling (docs/performance.md).
    def __getstate__(self) -> dict:
        state = {f.name: _to_numpy(getattr(self, f.name)) for f in dataclasses.fields(self)}
        state["attn"] = {f.name: _to_numpy(getattr(self.attn, f.name))
                         for f in dataclasses.fields(self.attn)}
        return state

    def __setstate__(self, state: dict) -> None:
        state = {name: _from_numpy(value) for name, value in state.items()}
        state["attn"] = AttentionMetadata(**{name: _from_numpy(value)
                                             for name, value in state["attn"].items()})
        self.__dict__.update(state)

    def to(self, device: torch.device) -> "ModelInput":
        def move(x):
            return x.to(device, non_blocking=True) if isinstance(x, torch.Tensor) else x
        attn = dataclasses.replace(self.attn, **{f.name: move(getattr(self.attn, f.name))
                                                 for f in dataclasses.fields(self.attn)})
        return ModelInput(move(self.input_ids), move(self.positions), attn,
                          move(self.logits_rows), self.blocks_to_copy,
                          move(self.inputs_from_samples), self.return_hidden,
                          self.lora_requests, self.lora_ids)


def _to_numpy(x):
    return x.numpy() if isinstance(x, torch.Tensor) else x


def _from_numpy(x):
    return torch.from_numpy(x) if isinstance(x, np.ndarray) else x


def block_tables_tensor(tables: list[list[int]]) -> torch.Tensor:
    """[num_seqs, longest table] int32, zero-padded; one flat copy, not a list per row
    (several times faster for a full decode batch)."""
    lens = np.fromiter(map(len, tables), np.int64, len(tables))
    flat = np.fromiter(itertools.chain.from_iterable(tables), np.int32, int(lens.sum()))
    padded = np.zeros((len(tables), int(lens.max())), np.int32)
    padded[np.arange(padded.shape[1])[None, :] < lens[:, None]] = flat
    return torch.from_numpy(padded)


def cache_slots(table: list[int], start: int, end: int, block_size: int) -> np.ndarray:
    """Cache slots of tokens start..end-1 of a sequence with this block table."""
    first, last = start // block_size, (end - 1) // block_size + 1
    slots = (np.asarray(table[first:last], dtype=np.int64)[:, None] * block_size
             + np.arange(block_size)).ravel()
    return slots[start - first * block_size:end - first * block_size]
