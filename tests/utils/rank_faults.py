"""Faults for tensor-parallel tests. This module imports nothing of the tests: a rank process
unpickles what it defines (a test module would drag its conftest imports into the rank)."""
import os


class FailsOffTheDriver:
    """A step's input that reads as it is in the driver's process and raises in a rank's."""

    def __init__(self, inner):
        self.inner, self.pid = inner, os.getpid()

    def __getattr__(self, name):
        if name.startswith("__") or name in ("inner", "pid"):  # (unpickling looks these up)
            raise AttributeError(name)
        if os.getpid() != self.pid:
            raise RuntimeError("injected failure on a remote rank")
        return getattr(self.inner, name)
