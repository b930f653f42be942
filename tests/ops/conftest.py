"""Op-test setup: a fixed seed per test (tests/conftest.py turns on Triton's interpreter where
there is no GPU)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
