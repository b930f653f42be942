"""A worker's adapters: read from disk once and kept on the host (up to max_cpu_loras, least
recently used out first), and copied into one of the max_loras device slots when a step needs
them (a slot whose adapter the step does not use gives way, least recently used first).

`add` loads and checks an adapter when the engine first sees it (its files, then its shapes
against the layers), so that a bad adapter fails its request, not a step; a step's `context`
puts its adapters in slots and builds the mask.
"""
from collections import OrderedDict

import torch
from torch import nn

from inference_engine.lora.adapter import LoRAAdapter, LoRAError, load_adapter
from inference_engine.lora.context import LoRAContext
from inference_engine.lora.layers import LoRASlots, checkpoint_shapes
from inference_engine.lora.request import LoRARequest
from inference_engine.model_executor.layers.linear import LinearBase


class LoRAManager:
    def __init__(self, model: nn.Module, max_loras: int, max_rank: int, max_cpu_loras: int):
        self.max_loras, self.max_rank, self.max_cpu_loras = max_loras, max_rank, max_cpu_loras
        self.packed_modules = getattr(model, "packed_modules", {})
        self.layers: dict[str, LinearBase] = {}
        for name, module in model.named_modules():
            if isinstance(module, LinearBase):
                module.lora = LoRASlots(module, max_loras, max_rank)
                self.layers[name] = module
        layer = next(iter(self.layers.values()))  # (its weight may be quantized: not its dtype)
        self.dtype, self.device = layer.params_dtype, next(layer.parameters()).device
        self.on_host: OrderedDict[int, LoRAAdapter] = OrderedDict()
        self.slot_of: OrderedDict[int, int] = OrderedDict()  # adapter id -> slot, LRU first

    def add(self, request: LoRARequest) -> None:
        """Loads (and checks) the adapter, unless it is loaded already."""
        if request.lora_int_id in self.on_host:
            self.on_host.move_to_end(request.lora_int_id)
            return
        adapter = load_adapter(request.lora_path, self.packed_modules, self.max_rank)
        self._check_fits(request.lora_path, adapter)
        self.on_host[request.lora_int_id] = adapter
        while len(self.on_host) > self.max_cpu_loras:  # (a slot keeps its copy)
            self.on_host.popitem(last=False)

    def _check_fits(self, path: str, adapter: LoRAAdapter) -> None:
        """Every piece names a linear layer of this model and has its sizes, which set_slot (in
        a step, where a failure is the engine's) takes for granted."""
        unknown = sorted(set(adapter.modules) - set(self.layers))
        if unknown:
            raise LoRAError(f"{path}: the adapter's module(s) {unknown[:3]} are not linear "
                            "layers of this model")
        for name, pieces in adapter.modules.items():
            shapes = checkpoint_shapes(self.layers[name])
            for shard, (a, b) in pieces.items():
                out_size, in_size = shapes[shard]
                if a.shape[1] != in_size or b.shape[0] != out_size:
                    where = name if shard is None else f"{name} (slice {shard})"
                    raise LoRAError(
                        f"{path}: {where}: lora_A is {list(a.shape)} and lora_B "
                        f"{list(b.shape)}; this model's layer takes lora_A [r, {in_size}] and "
                        f"lora_B [{out_size}, r]")

    def remove(self, lora_id: int) -> None:
        """Forgets the adapter; a request that still uses it reads it again from disk."""
        self.on_host.pop(lora_id, None)
        self.slot_of.pop(lora_id, None)

    def context(self, requests: dict[int, LoRARequest],
                token_lora_ids: torch.Tensor) -> LoRAContext | None:
        """The step's mask for `token_lora_ids` (0: the base model), its adapters put in
        slots; None for a step without any."""
        if not requests:
            return None
        if len(requests) > self.max_loras:
            raise LoRAError(f"a step has {len(requests)} adapters; max_loras is {self.max_loras}")
        slot_by_id = {lora_id: self._slot(request, set(requests))
                      for lora_id, request in requests.items()}
        lookup = torch.zeros(max(slot_by_id) + 1, dtype=torch.int64)  # id -> slot + 1
        for lora_id, slot in slot_by_id.items():
            lookup[lora_id] = slot + 1
        one_hot = nn.functional.one_hot(lookup[token_lora_ids.long()], self.max_loras + 1)[:, 1:]
        mask = one_hot.repeat_interleave(self.max_rank, dim=1)
        return LoRAContext(mask.to(self.device, self.dtype, non_blocking=True))

    def _slot(self, request: LoRARequest, in_step: set[int]) -> int:
        lora_id = request.lora_int_id
        if lora_id in self.slot_of:
            self.slot_of.move_to_end(lora_id)
            return self.slot_of[lora_id]
        if lora_id not in self.on_host:
            self.add(request)  # pushed out of the host cache since it was checked
        used = set(self.slot_of.values())
        free = [slot for slot in range(self.max_loras) if slot not in used]
        if not free:
            victim = next(i for i in self.slot_of if i not in in_step)
            free = [self.slot_of.pop(victim)]
        slot = free[0]
        pieces = self.on_host[lora_id].modules
        for name, layer in self.layers.items():
            layer.lora.set_slot(slot, pieces.get(name))
        self.slot_of[lora_id] = slot
        return slot
