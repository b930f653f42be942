"""Launching a Triton kernel without the JIT's per-call work, once its variant has compiled.

`kernel[grid](...)` binds every argument, builds a string key of their specializations and looks
it up on every call: host time paid once per layer in every eager step, which can then take
longer on the host than on the GPU (docs/performance.md, "Defaults and the figures behind them"). `CompiledLaunch` goes through the JIT the
first time an argument class is seen and keeps the compiled kernel it returns; later calls of that
class launch it directly, as the JIT itself would after its lookup.

The class of a call is at least as fine as Triton's specialization: each tensor's dtype and
16-byte alignment, each integer's width and whether it is 1 or divisible by 16, the constexpr
values, the device. Two calls of one class therefore run the same compiled variant either way.
Under the interpreter (TRITON_INTERPRET=1, CPU tests) the JIT returns no compiled kernel and every
call takes the JIT path. INFERENCE_ENGINE_TRITON_JIT_LAUNCH=1 sends every call through the JIT,
for measuring the difference in one run (benchmarks/gpu_job.sh throughput-jit-launch).
"""

import torch

from inference_engine import envs


def _arg_class(arg):
    if isinstance(arg, torch.Tensor):
        return arg.dtype, arg.data_ptr() % 16 == 0
    if isinstance(arg, bool) or arg is None:
        return arg
    if isinstance(arg, int):
        return -2**31 <= arg < 2**31, arg >= 2**63, arg == 1, arg % 16 == 0
    if isinstance(arg, float):
        return float
    raise TypeError(f"CompiledLaunch: no argument class for {type(arg).__name__}")


class CompiledLaunch:
    """`CompiledLaunch(kernel)(grid, *args, **constexprs)` does what `kernel[grid](*args,
    **constexprs)` does. Runtime arguments go positionally, constexprs by name, after them in the
    kernel's signature."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.compiled: dict = {}
        self.through_jit = envs.is_on(envs.TRITON_JIT_LAUNCH)

    def __call__(self, grid, *args, **constexprs) -> None:
        key = (tuple(map(_arg_class, args)), tuple(constexprs.items()),
               torch.cuda.current_device() if torch.cuda.is_available() else None)
        compiled = self.compiled.get(key)
        if compiled is None:
            compiled = self.kernel[grid](*args, **constexprs)
            # A CompiledKernel (none when interpreted).
            if hasattr(compiled, "packed_metadata") and not self.through_jit:
                self.compiled[key] = compiled
            return
        names = self.kernel.arg_names[len(args):]
        # The compiled kernel's launcher takes all three grid sizes (the JIT fills them in).
        compiled[(*grid, 1, 1)[:3]](*args, *(constexprs[name] for name in names))
