"""Which CUDA BLAS library torch's matmuls go through on a GPU worker: cuBLASLt unless
$INFERENCE_ENGINE_BLAS says "cublas" (torch's own default) or "per-phase" (cuBLAS for steps that
carry prompts, whose piecewise graphs are captured with it, and cuBLASLt for decode-only steps).
cuBLASLt reads the larger matmuls' weights faster; per-phase measured no different end to end, so
it stays opt-in (docs/performance.md, "Defaults and the figures behind them"). The choice is torch's and holds for the whole process
until switched. ROCm keeps torch's default.
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
