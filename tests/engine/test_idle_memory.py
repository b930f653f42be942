"""Memory given back when the engine is idle: a host tensor's pages return to the system (it
reads as zeros after), and an engine releases its KV cache only when no block holds anything."""
import mmap

import pytest
import torch

from inference_engine.worker.cache_engine import release_pages


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) * 1024


@pytest.mark.skipif(not hasattr(mmap, "PAGESIZE"), reason="needs pages")
def test_released_pages_leave_the_process_and_read_as_zeros():
    tensor = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB, written: resident
    before = rss_bytes()
    release_pages(tensor)
    assert before - rss_bytes() > 60 << 20
    page = mmap.PAGESIZE
    inside = tensor[page:-page]  # whole pages whatever the tensor's alignment
    assert int(inside.sum()) == 0
    tensor.fill_(2)  # still the tensor's memory: writable, resident again
    assert int(tensor[page:-page].float().mean()) == 2
