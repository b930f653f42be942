"""Backend choice for the custom ops: compiled extension, Triton kernel or plain-PyTorch reference.

Each public op is an `Op` that picks, once per device type, the first backend available there and
logs its choice once. The compiled op counts as available when `inference_engine._C` registered a
kernel for that device's dispatch key; Triton only runs on GPU tensors (CUDA or ROCm).
"""
import functools
import importlib
import importlib.util
import logging
from typing import Callable

import torch

logger = logging.getLogger(__name__)

_DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA"}  # ROCm tensors are "cuda" tensors too


@functools.cache
def extension_loaded() -> bool:
    """Imports inference_engine._C, which registers torch.ops.inference_engine.*; True if it did."""
    try:
        importlib.import_module("inference_engine._C")
    except ImportError as exc:
        logger.warning("inference_engine._C is not built (%s); the ops use Triton or torch", exc)
        return False
    return True


def has_compiled(op_name: str, device_type: str) -> bool:
    """Whether torch.ops.inference_engine.<op_name> has a kernel for tensors of this device type."""
    key = _DISPATCH_KEYS.get(device_type)
    return (key is not None and extension_loaded()
            and torch._C._dispatch_has_kernel_for_dispatch_key(f"inference_engine::{op_name}", key))


@functools.cache
def triton_available() -> bool:
    """Whether Triton is installed and a GPU is present for it to compile for."""
    return torch.cuda.is_available() and importlib.util.find_spec("triton") is not None


def _first_tensor_device(*args, **kwargs) -> str:
    """The device type of the call's first tensor argument (or first tensor of a list argument)."""
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, (list, tuple)) and arg:
            arg = arg[0]
        if isinstance(arg, torch.Tensor):
            return arg.device.type
    raise TypeError("an op needs at least one tensor argument")


_OPS: dict[str, "Op"] = {}
_CHOSEN: dict[tuple[str, str], str] = {}


@torch._dynamo.assume_constant_result
def chosen_backend(op_name: str, device_type: str) -> str:
    """The backend op_name runs on tensors of device_type, chosen and logged on first use.

    torch.compile runs this eagerly while tracing and keeps the answer as a constant, so the first
    call of an op may come from inside a compiled region.
    """
    key = (op_name, device_type)
    if key not in _CHOSEN:
        _CHOSEN[key] = _OPS[op_name].backend(device_type)
        logger.info("op %s on %s uses the %s backend", op_name, device_type, _CHOSEN[key])
    return _CHOSEN[key]


class Op:
    """A public op: calls the compiled kernel, else the Triton kernel, else the reference.

    `compiled` and `triton` take the reference's arguments; `compiled_name` is the torch.ops.inference_engine
    kernel whose registration decides whether `compiled` may run. `compiled_takes(*args)`, where
    given, says whether the compiled kernel has an instance for this call's arguments; when it has
    not, the call runs on the next backend. `device_of` maps the call's arguments to the device
    type that decides (by default the first tensor's). `name` (by default the reference's name
    without `_ref`) must be unique.
    """

    def __init__(self, ref: Callable, compiled: Callable | None = None, compiled_name: str = "",
                 triton: Callable | None = None, device_of: Callable[..., str] = _first_tensor_device,
                 name: str = "", compiled_takes: Callable[..., bool] | None = None):
        functools.update_wrapper(self, ref)
        self.name = name or ref.__name__.removesuffix("_ref")
        self._impls = {"compiled": compiled, "triton": triton, "torch": ref}
        self._compiled_name = compiled_name or self.name
        self._device_of = device_of
        self._compiled_takes = compiled_takes
        _OPS[self.name] = self

    def __call__(self, *args, **kwargs):
        device_type = self._device_of(*args, **kwargs)
        backend = chosen_backend(self.name, device_type)
        if (backend == "compiled" and self._compiled_takes is not None
                and not self._compiled_takes(*args, **kwargs)):
            backend = self.backend(device_type, compiled=False)
        return self._impls[backend](*args, **kwargs)

    def backend(self, device_type: str, compiled: bool = True) -> str:
        """'compiled', 'triton' or 'torch': what this op can run on tensors of this device type
        (without `compiled`: the backend after the compiled one)."""
        if (compiled and self._impls["compiled"] is not None
                and has_compiled(self._compiled_name, device_type)):
            return "compiled"
        if self._impls["triton"] is not None and device_type == "cuda" and triton_available():
            return "triton"
        return "torch"
