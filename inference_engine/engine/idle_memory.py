"""Giving memory back once the engine goes idle. A burst of requests leaves the heap full of
freed space (their prompts, outputs and step buffers) that glibc keeps in its arenas, one per
thread that allocated, so the process stays at its peak size; `malloc_trim` hands the free
pages of every arena back to the system."""
import ctypes
import ctypes.util
import gc
import logging

logger = logging.getLogger(__name__)


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): the allocator keeps its own
        return None


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Collects garbage cycles, then returns the allocator's free pages to the system."""
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
