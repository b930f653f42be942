"""GPU workers pick torch's CUDA BLAS library from INFERENCE_ENGINE_BLAS (cuBLASLt when unset;
"per-phase": cuBLAS for steps that carry prompts, cuBLASLt for decode-only ones)."""
import pytest
import torch

from inference_engine.worker import blas_library
from inference_engine.envs import BLAS
from inference_engine.worker.blas_library import prefer_blas_library, use_blas_for_step


@pytest.fixture
def chosen(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.backends.cuda, "preferred_blas_library", calls.append)
    monkeypatch.setattr(blas_library.torch.version, "hip", None)
    # The process's setting, put back afterwards: CPU runs in later tests must see none.
    monkeypatch.setattr(blas_library, "_mode", None)
    monkeypatch.setattr(blas_library, "_current", None)
    return calls


def test_cublaslt_when_unset(monkeypatch, chosen):
    monkeypatch.delenv(BLAS, raising=False)
    assert prefer_blas_library() == "cublaslt" and chosen == ["cublaslt"]


@pytest.mark.parametrize("library", ["cublaslt", "cublas"])
def test_the_switch_names_the_library(monkeypatch, chosen, library):
    monkeypatch.setenv(BLAS, library)
    assert prefer_blas_library() == library and chosen == [library]


def test_an_unknown_library_is_refused(monkeypatch, chosen):
    monkeypatch.setenv(BLAS, "mkl")
    with pytest.raises(ValueError, match="cublaslt, cublas, per-phase"):
        prefer_blas_library()
    assert chosen == []


def test_rocm_keeps_torchs_default(monkeypatch, chosen):
    monkeypatch.setenv(BLAS, "cublaslt")
    monkeypatch.setattr(blas_library.torch.version, "hip", "6.0")
    assert prefer_blas_library() is None and chosen == []


def test_per_phase_switches_only_when_the_phase_changes(monkeypatch, chosen):
    monkeypatch.setenv(BLAS, "per-phase")
    assert prefer_blas_library() == "per-phase" and chosen == ["cublaslt"]
    use_blas_for_step(carries_prompts=False)
    use_blas_for_step(carries_prompts=True)
    use_blas_for_step(carries_prompts=True)
    use_blas_for_step(carries_prompts=False)
    assert chosen == ["cublaslt", "cublas", "cublaslt"]


@pytest.mark.parametrize("library", ["cublaslt", "cublas"])
def test_steps_leave_a_single_library_alone(monkeypatch, chosen, library):
    monkeypatch.setenv(BLAS, library)
    prefer_blas_library()
    use_blas_for_step(carries_prompts=True)
    use_blas_for_step(carries_prompts=False)
    assert chosen == [library]
