"""The step's LoRA mask, set by the model runner around a forward pass that has tokens of some
adapter (as the attention metadata is), and read by the adapted linear layers."""
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch


@dataclass
class LoRAContext:
    """mask [num_tokens, max_loras * max_rank]: 1 in the max_rank columns of each token's slot,
    0 elsewhere (all 0 for a token of the base model)."""
    mask: torch.Tensor
    _tiled: dict[int, torch.Tensor] = field(default_factory=dict)

    def mask_for(self, num_slices: int) -> torch.Tensor:
        """The mask repeated for a layer of `num_slices` output slices (q, k, v: 3)."""
        if num_slices not in self._tiled:
            self._tiled[num_slices] = self.mask.repeat(1, num_slices)
        return self._tiled[num_slices]


_current: LoRAContext | None = None


def get_lora_context() -> LoRAContext | None:
    return _current


@contextmanager
def set_lora_context(context: LoRAContext | None):
    global _current
    previous, _current = _current, context
    try:
        yield
    finally:
        _current = previous
