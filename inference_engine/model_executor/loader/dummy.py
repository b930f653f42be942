"""Random weights for benchmarks: the model's real shapes, no checkpoint."""
import torch
from torch import nn

_UNIFORM_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@torch.no_grad()
def initialize_dummy_weights(module: nn.Module, seed: int = 0,
                             low: float = -1e-3, high: float = 1e-3) -> None:
    """Fill every floating-point parameter of `module` in place with U(low, high).

    Values are drawn on the device the parameter lives on (one seeded generator per device), so
    a 70B-sized model on a GPU fills in seconds with no host round trip. The small range keeps
    activations finite through many layers. Integer parameters (packed quantized weights) are
    left alone: random bits would not be a meaningful quantized weight.
    """
    generators: dict[torch.device, torch.Generator] = {}
    for param in module.parameters():
        if not param.is_floating_point() or param.device.type == "meta":
            continue
        gen = generators.get(param.device)
        if gen is None:
            gen = generators[param.device] = torch.Generator(device=param.device).manual_seed(seed)
        if param.dtype in _UNIFORM_DTYPES:
            param.uniform_(low, high, generator=gen)
        else:  # float8 types have no uniform_ kernel: draw in half precision, then convert
            param.copy_(torch.empty_like(param, dtype=torch.float16).uniform_(low, high, generator=gen))
