"""One step's model inputs: what every rank needs to run the model, and their trip to the
other ranks and to the device."""
import dataclasses
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
