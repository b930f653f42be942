"""Does copying a step's inputs to the GPU wait for the kernels queued before it? Times how long
the copy (pageable host memory, non_blocking, as the model runner does it) takes to return while
the GPU is idle and while a 20 ms kernel runs. An H100 (results_archive/2026-11.md, fourth session): 0.05 and
0.15 ms, so the driver stages the copy without waiting and pinned buffers gain nothing.

    python benchmarks/kernels/probe_h2d_wait.py
"""
import time

import torch

device = torch.device("cuda")
host = torch.arange(256 * 512, dtype=torch.int32)  # about a full batch's block tables
for _ in range(3):
    host.to(device, non_blocking=True)
for busy_ms in (0, 20):
    torch.cuda.synchronize()
    if busy_ms:
        torch.cuda._sleep(int(busy_ms * 1.98e6))  # about busy_ms at ~2 GHz
    start = time.perf_counter()
    host.to(device, non_blocking=True)
    returned = time.perf_counter() - start
    torch.cuda.synchronize()
    print(f"GPU busy {busy_ms} ms: the copy returned after {returned * 1e3:.3f} ms")
