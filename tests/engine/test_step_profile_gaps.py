"""benchmarks/step_profile.py's idle accounting: gaps between kernels, by the kinds around them."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
from step_profile import idle_gaps  # noqa: E402


def test_gaps_are_summed_by_the_kinds_around_them():
    kernels = [(0, 10, "matmul"), (11, 20, "norms"),          # 1 µs: the GPU's own switch
               (30, 40, "matmul"), (50, 60, "norms"),          # gaps of 10, 10 and 20 µs
               (80, 90, "matmul"), (95, 100, "sampling")]
    assert idle_gaps(kernels) == {("norms", "matmul"): (30.0, 2), ("matmul", "norms"): (10.0, 1),
                                  ("matmul", "sampling"): (5.0, 1)}


def test_overlapping_kernels_leave_no_gap_and_the_longer_one_ends_the_span():
    # Two streams: the copy overlaps the matmul; the next kernel's gap counts from the matmul's end.
    kernels = [(0, 100, "matmul"), (10, 20, "copies"), (130, 140, "attention: decode (paged)")]
    assert idle_gaps(kernels) == {("matmul", "attention: decode (paged)"): (30.0, 1)}
    assert idle_gaps([]) == {}
