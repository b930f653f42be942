"""Shared fixtures; GPU tests are skipped where no GPU is present."""
import os

# Idle OpenMP threads sleep instead of spinning: the engine thread, the server and the oracle
# share two cores here, and spinning threads slowed every op ten-fold under that contention.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# No test reaches the hub: a stray hub id fails at once (tests/loader/test_hub.py serves its own
# stand-in and lifts this there).
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

if not torch.cuda.is_available():
    # Triton kernels run in Triton's interpreter on CPU tensors. The variable must be set before
    # anything imports triton, and tests of other folders may import it first: hence here.
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
