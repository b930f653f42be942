"""Op-test setup: a fixed seed per test, and Triton's interpreter where there is no GPU."""
import os

import pytest
import torch

if not torch.cuda.is_available():
    # Triton kernels then run in Triton's interpreter on CPU tensors. The variable must be set
    # before anything (torch.compile included) imports triton, hence here and not in the test file.
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
