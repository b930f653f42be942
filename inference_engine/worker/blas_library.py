"""Which CUDA BLAS library torch's matmuls go through on a GPU worker: cuBLASLt unless
$INFERENCE_ENGINE_BLAS says "cublas" (torch's own default).

cuBLASLt reads the down projection's weights (4096 x 14336) at 79-89 % of an H100's read
bandwidth for 32-192 rows where cuBLAS reads them at 66-83 %; Llama-3-8B's other shapes run
alike on both (benchmarks/kernels/benchmark_skinny_matmul.py --kernels cublas cublaslt). End to
end (ShareGPT-1000, Llama-3-8B shapes) 44.67 and 44.62 requests/s against 44.27 and 44.28 on one
H100, 50.63 and 50.63 against 50.47 on an H200 (benchmarks/RESULTS.md, tenth session).
The choice is torch's, so it holds for the whole process. ROCm keeps torch's default.
"""
import os

import torch

BLAS_ENV = "INFERENCE_ENGINE_BLAS"
BLAS_LIBRARIES = ("cublaslt", "cublas")


def prefer_blas_library() -> str | None:
    """Sets torch's preferred CUDA BLAS library ($INFERENCE_ENGINE_BLAS, cuBLASLt by default);
    returns the one set, None on ROCm."""
    if torch.version.hip is not None:
        return None
    library = os.environ.get(BLAS_ENV, "cublaslt")
    if library not in BLAS_LIBRARIES:
        raise ValueError(f"{BLAS_ENV} must be one of {', '.join(BLAS_LIBRARIES)}, got {library!r}")
    torch.backends.cuda.preferred_blas_library(library)
    return library
