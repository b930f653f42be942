"""What the host was doing while the GPU sat idle.

A traced window gives the GPU's kernels and the host's spans: the engine's parts (record_function
ranges that StepProfile puts around them) and the CUDA runtime and driver calls. Each idle gap of
the GPU is charged to the innermost host span open at the moment the GPU ran dry: a gap that
opens inside "cudaMemcpyAsync" says a copy held the host until the GPU had drained its queue; a
gap that opens in "engine: prepare input" with no CUDA call open says the host was still
building the step when the GPU finished the last one.
"""
import bisect
from collections import defaultdict

NO_SPAN = "(none open)"


def idle_spans(kernels: list[tuple[float, float, str]],
               min_us: float) -> list[tuple[float, float, str, str]]:
    """(start, end, kind before, kind after) of each gap longer than min_us between the end of
    everything before a kernel and that kernel's start (kernels: (start, end, kind), µs)."""
    kernels = sorted(kernels)
    if not kernels:
        return []
    gaps = []
    _, last_end, last_kind = kernels[0]
    for start, end, kind in kernels[1:]:
        if start - last_end > min_us:
            gaps.append((last_end, start, last_kind, kind))
        if end > last_end:
            last_end, last_kind = end, kind
    return gaps


class HostSpans:
    """Named host intervals (start, end, name), searchable by the instant they cover."""

    def __init__(self, spans: list[tuple[float, float, str]]):
        self.spans = sorted(spans)
        self.starts = [s for s, _, _ in self.spans]

    def innermost(self, t: float) -> str:
        """The shortest span open at t, or NO_SPAN."""
        best, best_len = NO_SPAN, float("inf")
        for start, end, name in self.spans[:bisect.bisect_right(self.starts, t)]:
            if end > t and end - start < best_len:
                best, best_len = name, end - start
        return best


def charge_gaps(gaps: list[tuple[float, float, str, str]],
                host: HostSpans) -> dict[str, tuple[float, int]]:
    """Idle µs and gap count per host span open when each gap began."""
    charged: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for start, end, _, _ in gaps:
        entry = charged[host.innermost(start)]
        entry[0] += end - start
        entry[1] += 1
    return {name: (us, n) for name, (us, n) in charged.items()}


def call_times(spans: list[tuple[float, float, str]]) -> dict[str, tuple[float, int, float]]:
    """Total µs, count and longest µs per span name."""
    times: dict[str, list] = defaultdict(lambda: [0.0, 0, 0.0])
    for start, end, name in spans:
        entry = times[name]
        entry[0] += end - start
        entry[1] += 1
        entry[2] = max(entry[2], end - start)
    return {name: (us, n, longest) for name, (us, n, longest) in times.items()}


def print_host_report(gaps: list[tuple[float, float, str, str]],
                      parts: list[tuple[float, float, str]],
                      calls: list[tuple[float, float, str]],
                      everything: list[tuple[float, float, str]]) -> None:
    """GPU idle by the engine part, by the CUDA call and by any host event (torch ops too) the
    host was in when it began; then the CUDA calls that held the host longest."""
    total = sum(end - start for start, end, _, _ in gaps)
    print(f"\nGPU idle by what the host was doing when it began ({len(gaps)} gaps, "
          f"{total / 1e3:.2f} ms)")
    levels = [HostSpans(spans) for spans in (parts, calls, everything)]
    for title, level in zip(("engine part", "CUDA call", "any host event"), levels):
        print(f"{title:<44}{'ms':>9}{'gaps':>7}{'mean us':>9}")
        charged = charge_gaps(gaps, level)
        for name, (us, n) in sorted(charged.items(), key=lambda kv: -kv[1][0])[:10]:
            print(f"{name[:44]:<44}{us / 1e3:>9.2f}{n:>7}{us / n:>9.1f}")
    print("\nlargest gaps: us, kernels around it; the engine part, CUDA call, host event")
    for start, end, before, after in sorted(gaps, key=lambda g: g[0] - g[1])[:10]:
        names = " | ".join(level.innermost(start)[:40] for level in levels)
        print(f"{end - start:>8.0f}  {before} -> {after}: {names}")
    print(f"\nCUDA calls on the host{'':<22}{'ms':>9}{'calls':>7}{'mean us':>9}{'max us':>9}")
    times = call_times(calls)
    for name, (us, n, longest) in sorted(times.items(), key=lambda kv: -kv[1][0])[:12]:
        print(f"{name[:44]:<44}{us / 1e3:>9.2f}{n:>7}{us / n:>9.1f}{longest:>9.0f}")
