"""The few-row matmul (csrc/gpu/skinny_matmul_kernels.cu) against a float64 product, and the
linear layers' use of it. The kernel runs only where it applies and is not switched off;
everywhere else the op is torch's F.linear."""
import pytest
import torch
import torch.nn.functional as F

from inference_engine import ops
from inference_engine.model_executor.layers.linear import linear
from inference_engine.envs import SKINNY_MATMUL
from inference_engine.ops._compiled import skinny_matmul_takes
from op_testing import require_compiled

# ||out - ref|| / ||ref||: one output rounding of the dtype over float32 accumulation.
RELATIVE_ERROR = {torch.float16: 2e-3, torch.bfloat16: 1e-2}


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref).norm() / ref.norm()).item()


def test_torch_on_the_cpu(monkeypatch):
    x, w = torch.randn(4, 256, dtype=torch.bfloat16), torch.randn(64, 256, dtype=torch.bfloat16)
    monkeypatch.delenv(SKINNY_MATMUL, raising=False)
    assert not skinny_matmul_takes(x, w)  # a CPU tensor
    torch.testing.assert_close(ops.skinny_matmul(x, w), F.linear(x, w), atol=0, rtol=0)
    torch.testing.assert_close(linear(x, w), F.linear(x, w), atol=0, rtol=0)


@pytest.fixture
def kernel_on(monkeypatch):
    """The compiled kernel where it can run (on by default: no switch in the environment)."""
    require_compiled("skinny_matmul", "cuda")
    if torch.version.hip is not None or torch.cuda.get_device_capability() < (8, 0):
        pytest.skip("the kernel needs CUDA's tensor cores (sm_80+)")
    monkeypatch.delenv(SKINNY_MATMUL, raising=False)


def _gpu_inputs(rows, n, k, dtype, bias, strided):
    x = torch.randn(rows, k + (64 if strided else 0), dtype=dtype, device="cuda")[:, :k]
    w = torch.randn(n, k, dtype=dtype, device="cuda")
    b = torch.randn(n, dtype=dtype, device="cuda") if bias else None
    return x, w, b


@pytest.mark.gpu
@pytest.mark.parametrize("rows", [1, 3, 5, 8])
@pytest.mark.parametrize("n, k", [(16, 128), (48, 384), (256, 1024), (4096, 4096), (64, 14336)])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("bias", [False, True])
def test_skinny_matmul_kernel(kernel_on, rows, n, k, dtype, bias):
    x, w, b = _gpu_inputs(rows, n, k, dtype, bias, strided=rows % 2 == 1)
    assert skinny_matmul_takes(x, w, b)
    ref = x.double() @ w.double().T + (0 if b is None else b.double())
    out = ops.skinny_matmul(x, w, b)
    assert out.shape == (rows, n) and out.dtype == dtype
    assert relative_error(out, ref) < RELATIVE_ERROR[dtype]
    assert relative_error(F.linear(x, w, b), ref) < RELATIVE_ERROR[dtype]  # the bound is fair


@pytest.mark.gpu
def test_shapes_it_does_not_take_run_torch(monkeypatch):
    monkeypatch.delenv(SKINNY_MATMUL, raising=False)
    for rows, n, k in [(9, 64, 256), (4, 40, 256), (4, 64, 200)]:
        x, w, _ = _gpu_inputs(rows, n, k, torch.bfloat16, False, False)
        assert not skinny_matmul_takes(x, w)
        torch.testing.assert_close(linear(x, w), F.linear(x, w), atol=0, rtol=0)
    x, w, _ = _gpu_inputs(4, 64, 256, torch.bfloat16, False, False)
    monkeypatch.setenv(SKINNY_MATMUL, "0")  # switched off
    assert not skinny_matmul_takes(x, w)


@pytest.mark.gpu
def test_misaligned_rows_and_weights(kernel_on):
    """Views that do not start on a 16-byte boundary are copied to aligned memory first."""
    x = torch.randn(3, 257, dtype=torch.bfloat16, device="cuda")[:, 1:]
    w = torch.randn(64 * 256 + 1, dtype=torch.bfloat16, device="cuda")[1:].view(64, 256)
    assert skinny_matmul_takes(x, w)
    ref = x.double() @ w.double().T
    assert relative_error(ops.skinny_matmul(x, w), ref) < RELATIVE_ERROR[torch.bfloat16]


@pytest.mark.gpu
def test_skinny_matmul_in_a_cuda_graph(kernel_on):
    """Captured once, replayed on new inputs written into the captured buffer (a decode graph)."""
    x, w, _ = _gpu_inputs(8, 512, 2048, torch.bfloat16, False, False)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        linear(x, w)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        out = linear(x, w)
    for _ in range(2):
        x.copy_(torch.randn_like(x))
        graph.replay()
        torch.cuda.synchronize()
        assert relative_error(out, x.double() @ w.double().T) < RELATIVE_ERROR[torch.bfloat16]


@pytest.mark.gpu
@pytest.mark.parametrize("rows", [1, 8, 9])
def test_lm_head_takes_the_kernel_for_few_rows(kernel_on, monkeypatch, rows):
    from inference_engine.model_executor.layers import linear as linear_module
    from inference_engine.model_executor.layers.vocab_embedding import ParallelLMHead
    calls, kernel = [], linear_module.ops.skinny_matmul
    monkeypatch.setattr(linear_module.ops, "skinny_matmul",
                        lambda x, w, b=None: calls.append(x.shape[0]) or kernel(x, w, b))
    head = ParallelLMHead(1024, 256).cuda().to(torch.bfloat16)
    head.weight.normal_()
    hidden = torch.randn(rows, 256, dtype=torch.bfloat16, device="cuda")
    logits = head(hidden)
    assert logits.shape == (rows, 1024) and calls == ([rows] if rows <= 8 else [])
    assert relative_error(logits, hidden.double() @ head.weight.double().T) < 1e-2
