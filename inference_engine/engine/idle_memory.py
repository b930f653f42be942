"""Giving memory back once the engine goes idle. A burst of requests leaves the heap full of
freed space (their prompts, outputs and step buffers) that glibc keeps in its arenas, one per
thread that allocated, and the host KV cache's pages that requests wrote stay resident though no
block is in use; so the process would stay at its peak size. `malloc_trim` hands the heap's free
pages back, `madvise(MADV_DONTNEED)` the cache's (they read as zeros when next touched)."""
import ctypes
import ctypes.util
import gc
import mmap

import torch

_MADV_DONTNEED = 4


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_LIBC = _libc()
# glibc's; other C libraries (musl, macOS) keep their own free memory.
_MALLOC_TRIM = getattr(_LIBC, "malloc_trim", None)
_MADVISE = getattr(_LIBC, "madvise", None)


def release_free_memory() -> None:
    """Collects garbage cycles, then returns the allocator's free pages to the system."""
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def release_pages(tensor: torch.Tensor) -> None:
    """Gives the pages of a host tensor whose contents no longer matter back to the system; the
    tensor keeps its memory range, which reads as zeros until written again."""
    if _MADVISE is None or tensor.device.type != "cpu" or not tensor.is_contiguous():
        return
    page = mmap.PAGESIZE
    start = -(-tensor.data_ptr() // page) * page  # whole pages inside the tensor only
    end = (tensor.data_ptr() + tensor.numel() * tensor.element_size()) // page * page
    if end > start:
        _MADVISE(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)
