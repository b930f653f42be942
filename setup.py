"""Builds inference_engine._C, the compiled custom ops, beside the pure-Python package.

The extension is compiled against the torch that is already installed, so install with

    pip install --no-build-isolation -e .     # or: pip install --no-build-isolation .

(build isolation would install a second torch, by default the 5 GB CUDA wheel, just to build).

What gets built follows the installed torch:
  * CPU torch: a CppExtension of the CPU kernels (csrc/cpu).
  * CUDA torch: a CUDAExtension of the CPU and GPU kernels (csrc/gpu) for TORCH_CUDA_ARCH_LIST
    (default "8.0;9.0").
  * ROCm torch (torch.version.hip) or USE_ROCM=1: the same CUDAExtension; torch hipifies csrc/gpu
    and compiles it with -DUSE_ROCM for PYTORCH_ROCM_ARCH (default "gfx90a;gfx942").
If torch is missing, no compiler is found or the build fails, the package still installs with a
warning, and inference_engine.ops falls back to its Triton kernels and torch references.
"""
import os
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
CXX_FLAGS = ["-O3", "-g0", "-fopenmp"]  # -g0: Python's default -g costs 40% more CPU
NVCC_FLAGS = ["-O3", "--expt-relaxed-constexpr"]


def _warn(message: str) -> None:
    print(f"WARNING: inference_engine._C not built: {message}. The ops fall back to Triton/torch.",
          file=sys.stderr)


def _sources(*patterns: str) -> list[str]:
    """Paths relative to setup.py (torch's hipify and setuptools both want relative paths)."""
    return sorted(str(p.relative_to(ROOT)) for pattern in patterns for p in ROOT.glob(pattern))


def _gpu_backend(torch) -> str | None:
    """'rocm', 'cuda' or None, from the installed torch and USE_ROCM."""
    if torch.version.hip is not None:
        return "rocm"
    if os.environ.get("USE_ROCM") == "1":
        _warn("USE_ROCM=1 needs a ROCm build of torch; building the CPU ops only")
        return None
    from torch.utils.cpp_extension import CUDA_HOME
    return "cuda" if torch.version.cuda is not None and CUDA_HOME is not None else None


def _build_config() -> dict:
    """setup() arguments for the extension, or {} where it cannot be built."""
    try:
        import torch
        from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
    except ImportError:
        _warn("torch is not importable at build time (install with --no-build-isolation)")
        return {}

    class OptionalBuildExtension(BuildExtension):
        """A failed compile warns instead of failing the install: the ops have Python fallbacks."""

        def run(self):
            try:
                super().run()
            except Exception as exc:  # noqa: BLE001 - any compiler or toolchain failure
                _warn(f"{type(exc).__name__}: {exc}")

    sources = _sources("csrc/torch_bindings.cpp", "csrc/cpu/*.cpp")
    backend = _gpu_backend(torch)
    if backend is None:
        ext = CppExtension("inference_engine._C", sources, extra_compile_args=CXX_FLAGS)
    else:
        if backend == "rocm":
            os.environ.setdefault("PYTORCH_ROCM_ARCH", "gfx90a;gfx942")
            defines = ["-DUSE_ROCM"]
        else:
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
            defines = []
        ext = CUDAExtension(
            "inference_engine._C", sources + _sources("csrc/gpu/*.cu", "csrc/gpu/*.cpp"),
            extra_compile_args={"cxx": CXX_FLAGS + defines, "nvcc": NVCC_FLAGS + defines})
    print(f"inference_engine._C: building the {backend or 'cpu'} extension", file=sys.stderr)
    return {"ext_modules": [ext], "cmdclass": {"build_ext": OptionalBuildExtension}}


setup(**_build_config())
