"""CompiledLaunch: the JIT path for a new argument class, the compiled kernel's own launcher for a
known one, and the same results either way.

On CPU (Triton's interpreter) the JIT returns no compiled kernel, so every call takes the JIT path:
these tests check the argument classes and the results; the GPU run checks the direct launches.
"""
import pytest
import torch

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from inference_engine.ops.triton_launch import CompiledLaunch, _arg_class  # noqa: E402

GPU = torch.cuda.is_available()
DEVICE = "cuda" if GPU else "cpu"


@triton.jit
def _scaled_add(x, y, out, n, scale, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(x + offs, mask=mask)
    b = tl.load(y + offs, mask=mask)
    tl.store(out + offs, a * scale + b, mask=mask)


def scaled_add(launch: CompiledLaunch, x, y, scale: float) -> torch.Tensor:
    out = torch.empty_like(x)
    launch((triton.cdiv(x.numel(), 32),), x, y, out, x.numel(), scale, BLOCK=32)
    return out


def test_argument_classes_separate_what_triton_specializes():
    base = torch.zeros(8, dtype=torch.float32)
    assert _arg_class(base) != _arg_class(base.half())  # dtype
    assert _arg_class(base) != _arg_class(base[1:])  # 4 bytes off: not 16-byte aligned
    assert len({_arg_class(v) for v in (1, 16, 17, 32, 2**31, 2**40)}) == 4  # 1, 16k, other, 64-bit
    assert _arg_class(16) == _arg_class(32) and _arg_class(17) == _arg_class(3)
    assert _arg_class(True) != _arg_class(1)
    assert _arg_class(0.5) == _arg_class(2.0) and _arg_class(None) is None
    with pytest.raises(TypeError):
        _arg_class("a string")


def test_results_equal_the_jit_for_every_class():
    launch = CompiledLaunch(_scaled_add)
    x = torch.randn(100, device=DEVICE)
    y = torch.randn(100, device=DEVICE)
    for x_, y_ in [(x, y), (x, y), (x[1:], y[1:]), (x[:16], y[:16]), (x[:1], y[:1]), (x, y)]:
        torch.testing.assert_close(scaled_add(launch, x_, y_, 0.5), x_ * 0.5 + y_)


@pytest.mark.gpu
@pytest.mark.skipif(not GPU, reason="needs a GPU")
def test_known_class_skips_the_jit(monkeypatch):
    launch = CompiledLaunch(_scaled_add)
    x = torch.randn(100, device=DEVICE)
    y = torch.randn(100, device=DEVICE)
    scaled_add(launch, x, y, 2.0)  # compiles (or loads) the variant through the JIT
    assert len(launch.compiled) == 1
    jit_calls = []
    jit_run = _scaled_add.run
    monkeypatch.setattr(_scaled_add, "run", lambda *a, **k: jit_calls.append(1) or jit_run(*a, **k))
    for scale in (3.0, -1.0):  # same class: the compiled kernel's launcher
        torch.testing.assert_close(scaled_add(launch, x, y, scale), x * scale + y)
    assert jit_calls == []
    torch.testing.assert_close(scaled_add(launch, x[1:], y[1:], 2.0), x[1:] * 2 + y[1:])
    assert jit_calls == [1] and len(launch.compiled) == 2  # a misaligned pointer: a new class


class _FakeCompiled:
    packed_metadata = None

    def __init__(self, launches):
        self.launches = launches

    def __getitem__(self, grid):
        return lambda *args: self.launches.append((grid, args))


class _FakeJit:
    """Stands for a compiled JIT function on machines without a GPU: records what reaches it."""
    arg_names = ["x", "n", "BLOCK", "FLAG"]

    def __init__(self):
        self.jit_calls, self.launches = [], []

    def __getitem__(self, grid):
        def run(*args, **constexprs):
            self.jit_calls.append((grid, args, constexprs))
            return _FakeCompiled(self.launches)
        return run


def test_direct_launch_gets_three_grid_sizes_and_the_constexprs_in_signature_order():
    jit = _FakeJit()
    launch = CompiledLaunch(jit)
    x = torch.zeros(4)
    launch((7,), x, 5, FLAG=True, BLOCK=32)
    assert len(jit.jit_calls) == 1 and jit.launches == []
    launch((9, 2), x, 6, FLAG=True, BLOCK=32)  # same class: launched directly
    assert jit.launches == [((9, 2, 1), (x, 6, 32, True))]  # signature order
    launch((9,), x, 16, FLAG=True, BLOCK=32)  # 16: another integer class, through the JIT
    assert len(jit.jit_calls) == 2


def test_jit_launch_switch_sends_every_call_through_the_jit(monkeypatch):
    monkeypatch.setenv("INFERENCE_ENGINE_TRITON_JIT_LAUNCH", "1")
    jit = _FakeJit()
    launch = CompiledLaunch(jit)
    for n in (5, 6, 7):
        launch((1,), torch.zeros(4), n, FLAG=True, BLOCK=32)
    assert len(jit.jit_calls) == 3 and jit.launches == []
