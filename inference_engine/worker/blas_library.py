"""Which CUDA BLAS library torch's matmuls go through on a GPU worker: cuBLASLt unless
$INFERENCE_ENGINE_BLAS says "cublas" (torch's own default) or "per-phase".

cuBLASLt reads the down projection's weights (4096 x 14336) at 79-89 % of an H100's read
bandwidth for 32-192 rows where cuBLAS reads them at 66-83 %; Llama-3-8B's other shapes run
alike on both (benchmarks/kernels/benchmark_skinny_matmul.py --kernels cublas cublaslt). End to
end (ShareGPT-1000, Llama-3-8B shapes) 44.67 and 44.62 requests/s against 44.27 and 44.28 on one
H100, 50.63 and 50.63 against 50.47 on an H200 (benchmarks/RESULTS.md, tenth session).
At the row counts of steps that carry prompts (384-768) an H200's cuBLAS ran one layer's four
matmuls 2-5 % faster (eleventh session): "per-phase" takes cuBLAS for those steps (their
piecewise graphs are captured with it) and cuBLASLt for decode-only steps; end to end on an
H100 it measured no different (44.73 / 43.94 against 44.45 / 44.25 requests/s, 2026-12-05), so
it stays opt-in. The choice is torch's and holds for the whole process until switched. ROCm keeps
torch's default.
"""

import torch

from inference_engine import envs

BLAS_LIBRARIES = ("cublaslt", "cublas", "per-phase")
# Under "per-phase": the library for steps that carry prompts (True) and decode-only ones.
PHASE_LIBRARIES = {True: "cublas", False: "cublaslt"}

_mode: str | None = None  # what prefer_blas_library() set in this process
_current: str | None = None  # the library torch prefers now, under "per-phase"


def prefer_blas_library() -> str | None:
    """Sets torch's preferred CUDA BLAS library ($INFERENCE_ENGINE_BLAS, cuBLASLt by default;
    "per-phase" starts with cuBLASLt); returns the setting, None on ROCm."""
    global _mode, _current
    if torch.version.hip is not None:
        return None
    setting = envs.get(envs.BLAS, "cublaslt")
    if setting not in BLAS_LIBRARIES:
        raise ValueError(f"{envs.BLAS} must be one of {', '.join(BLAS_LIBRARIES)}, got {setting!r}")
    _mode, _current = setting, None
    if setting == "per-phase":
        use_blas_for_step(carries_prompts=False)
    else:
        torch.backends.cuda.preferred_blas_library(setting)
    return setting


def use_blas_for_step(carries_prompts: bool) -> None:
    """Under "per-phase", switches torch's library for a step that does (or does not) carry
    prompts; otherwise nothing. A CUDA graph keeps the library it was captured with."""
    global _current
    library = PHASE_LIBRARIES[carries_prompts]
    if _mode == "per-phase" and library != _current:
        torch.backends.cuda.preferred_blas_library(library)
        _current = library
