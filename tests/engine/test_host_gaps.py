"""benchmarks/host_gaps.py: GPU idle charged to what the host was doing when it began."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
from host_gaps import NO_SPAN, HostSpans, call_times, charge_gaps, idle_spans  # noqa: E402


def test_idle_spans_are_the_gaps_after_everything_before_each_kernel():
    kernels = [(50, 60, "norms"), (0, 40, "matmul"), (10, 20, "copies"), (61, 70, "matmul")]
    assert idle_spans(kernels, 2.0) == [(40, 50, "matmul", "norms")]
    assert idle_spans([], 2.0) == []


def test_the_innermost_open_span_is_charged():
    host = HostSpans([(0, 100, "engine: launch the model"), (30, 45, "cudaMemcpyAsync"),
                      (60, 70, "cudaLaunchKernel")])
    assert host.innermost(35) == "cudaMemcpyAsync"
    assert host.innermost(50) == "engine: launch the model"
    assert host.innermost(100) == NO_SPAN  # spans are half-open: it ended there
    gaps = [(35, 40, "a", "b"), (36, 38, "a", "b"), (50, 58, "a", "b"), (120, 121, "a", "b")]
    assert charge_gaps(gaps, host) == {"cudaMemcpyAsync": (7, 2),
                                       "engine: launch the model": (8, 1), NO_SPAN: (1, 1)}


def test_call_times_sum_count_and_longest():
    spans = [(0, 5, "cudaMemcpyAsync"), (10, 40, "cudaMemcpyAsync"), (50, 52, "cuLaunchKernel")]
    assert call_times(spans) == {"cudaMemcpyAsync": (35, 2, 30), "cuLaunchKernel": (2, 1, 2)}
