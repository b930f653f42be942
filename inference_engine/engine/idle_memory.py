"""Giving memory back once the engine goes idle. A burst of requests leaves the heap full of
freed space (their prompts, outputs and step buffers) that glibc keeps in its arenas, one per
thread that allocated, so the process would stay at its peak size; `malloc_trim` hands the
heap's free pages back. (The host KV cache's pages go back too: worker/cache_engine.py.)"""
import ctypes
import ctypes.util
import gc


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): it keeps its own free memory
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Collects garbage cycles, then returns the allocator's free pages to the system."""
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
