"""Where an engine step's time goes.

`StepProfile(engine)` wraps the engine's own methods with timers (the GPU is synchronised around
the model call so its time is its own) and can trace a window of steps with torch.profiler to
split the GPU time by kernel kind. `report()` prints both tables. With `timers=False` nothing
is synchronised inside the window, so async scheduling keeps overlapping host and GPU, and the
trace also says how busy the GPU was: kernel time over the window's wall time. With `host=True`
the trace records the host as well, and each idle gap is charged to what the host was doing when
it began (benchmarks/host_gaps.py).
"""
import gc
import re
import time
from collections import defaultdict

import torch

from host_gaps import idle_spans, print_host_report

# Kernel-name fragments -> the kind they are counted as (first match wins).
KERNEL_KINDS = [
    ("paged_attention", "attention: decode (paged)"),
    ("prefill", "attention: prefill"),
    ("attn", "attention: prefill"),
    ("flash", "attention: prefill"),
    ("gemm", "matmul"), ("gemv", "matmul"), ("nvjet", "matmul"), ("cutlass", "matmul"),
    ("sm90_xmma", "matmul"), ("splitk", "matmul"),
    ("reshape_and_cache", "KV-cache write"),
    ("rms_norm", "norms"),
    ("rotary", "rotary"),
    ("silu", "activation"), ("gelu", "activation"),
    ("softmax", "sampling"), ("argmax", "sampling"), ("argmin", "sampling"), ("reduce", "sampling"),
    ("exponential", "sampling"), ("sort", "sampling"), ("topk", "sampling"),
    ("memcpy", "copies"), ("memset", "copies"), ("copy", "copies"), ("index", "copies"),
    ("gather", "copies"), ("cat", "copies"),
]


GAP_MIN_US = 2.0  # shorter gaps are the GPU's own kernel-to-kernel switch
PART_PREFIX = "engine: "  # the record_function labels of the engine's parts (host=True)
GC_PREFIX = "python: garbage collection"  # the collector's passes (host=True)
CUDA_CALL = re.compile(r"^cu(da)?[A-Z]")  # runtime (cudaMemcpyAsync) and driver (cuLaunchKernel)


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for key, kind in KERNEL_KINDS if key in low), "other")


class StepProfile:
    def __init__(self, engine, trace_steps: tuple[int, int] | None = None, timers: bool = True,
                 host: bool = False):
        self.engine = engine
        self.host = host and not timers
        self._gc_range = None  # the open record_function of a collector pass
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.trace_steps = trace_steps
        self.trace = None
        self.trace_wall = 0.0
        self.num_steps = 0
        step = engine.step

        def profiled_step(*args, **kwargs):
            self._maybe_trace()
            self.num_steps += 1
            if self.host:
                with torch.profiler.record_function(PART_PREFIX + "step, outside the parts below"):
                    return step(*args, **kwargs)
            if not timers:
                return step(*args, **kwargs)
            return self._timed("step (all)", lambda: step(*args, **kwargs), (), sync=False)
        engine.step = profiled_step
        if timers:
            self._wrap_parts(engine)
        elif self.host:
            self._label_parts(engine)
            gc.callbacks.append(self._label_gc)

    def _wrap_parts(self, engine) -> None:
        runner = engine.executor.driver.model_runner
        self._wrap(engine.scheduler, "schedule", "host: schedule")
        self._wrap(engine.step_inputs, "build", "host: prepare input")
        self._wrap(runner, "sample", "sample (GPU + reading tokens)", sync=True)
        self._wrap(engine, "_process_model_outputs", "host: process outputs")
        self._wrap(engine.scheduler, "free_finished_seq_groups", "host: free finished")
        original = runner.execute_model

        def execute_model(model_input):
            kind = "decode only" if model_input.attn.is_decode_only else "with prefills"
            return self._timed(f"model: {kind} (GPU)", original, (model_input,), sync=True)
        runner.execute_model = execute_model

    def _label_parts(self, engine) -> None:
        runner = engine.executor.driver.model_runner
        for obj, method, label in ((engine.scheduler, "schedule", "schedule"),
                                   (engine.step_inputs, "build", "prepare input"),
                                   (runner, "execute_model", "launch the model"),
                                   (runner, "sample", "launch sampling"),
                                   (engine, "_process_step", "read tokens, free finished"),
                                   (engine, "_process_model_outputs", "process outputs")):
            original = getattr(obj, method)

            def labelled(*args, _original=original, _label=PART_PREFIX + label):
                with torch.profiler.record_function(_label):
                    return _original(*args)
            setattr(obj, method, labelled)

    def _label_gc(self, phase: str, info: dict) -> None:
        """Marks each pass of Python's garbage collector in the trace, as record_function would."""
        if phase == "start" and self.trace is not None and self.trace_wall < 0:  # tracing
            self._gc_range = torch.ops.profiler._record_function_enter_new(
                f"{GC_PREFIX} (generation {info['generation']})", None)
        elif self._gc_range is not None:
            torch.ops.profiler._record_function_exit._RecordFunction(self._gc_range)
            self._gc_range = None

    def _gpu_events(self) -> list:
        """The trace's kernels and copies, without the GPU-side shadows of the host's labels."""
        return [e for e in self.trace.events() if e.device_type == torch.autograd.DeviceType.CUDA
                and not e.name.startswith((PART_PREFIX, GC_PREFIX))]

    def _wrap(self, obj, method: str, label: str, sync: bool = False) -> None:
        original = getattr(obj, method)
        setattr(obj, method, lambda *args: self._timed(label, original, args, sync))

    def _timed(self, label: str, fn, args, sync: bool):
        if sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn(*args)
        if sync and torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds[label] += time.perf_counter() - start
        self.calls[label] += 1
        return result

    def _maybe_trace(self) -> None:
        if self.trace_steps is None or not torch.cuda.is_available():
            return
        first, last = self.trace_steps
        if self.num_steps == first:
            activities = [torch.profiler.ProfilerActivity.CUDA]
            if self.host:
                activities.append(torch.profiler.ProfilerActivity.CPU)
            self.trace = torch.profiler.profile(activities=activities)
            torch.cuda.synchronize()
            self.trace.__enter__()
            self.trace_wall = -time.perf_counter()
        elif self.num_steps == last and self.trace is not None:
            torch.cuda.synchronize()
            self.trace_wall += time.perf_counter()
            self.trace.__exit__(None, None, None)
            if self._label_gc in gc.callbacks:
                gc.callbacks.remove(self._label_gc)

    def report(self) -> None:
        if self.seconds:
            self._report_parts()
        if self.trace is not None:
            self._report_kernels()

    def _report_parts(self) -> None:
        total = self.seconds.get("step (all)", 0.0)
        print(f"\nstep time over {self.num_steps} steps ({total:.2f} s in steps)")
        print(f"{'part':<34}{'calls':>8}{'s':>9}{'% of steps':>12}{'ms/call':>10}")
        for label in sorted(self.seconds, key=lambda k: -self.seconds[k]):
            s, n = self.seconds[label], self.calls[label]
            print(f"{label:<34}{n:>8}{s:>9.2f}{100 * s / max(total, 1e-9):>12.1f}{1000 * s / n:>10.3f}")
        named = sum(s for k, s in self.seconds.items() if k != "step (all)")
        print(f"{'host: the rest of step()':<34}{'':>8}{total - named:>9.2f}"
              f"{100 * (total - named) / max(total, 1e-9):>12.1f}")

    def _report_kernels(self) -> None:
        by_kind: dict[str, float] = defaultdict(float)
        by_name: dict[str, float] = defaultdict(float)
        for event in self._gpu_events():
            us = event.device_time_total if hasattr(event, "device_time_total") else event.cuda_time_total
            by_kind[kernel_kind(event.name)] += us
            by_name[event.name] += us
        gpu = sum(by_kind.values())
        first, last = self.trace_steps
        print(f"\nGPU kernel time over steps {first}..{last - 1}: {gpu / 1e3:.1f} ms of "
              f"{self.trace_wall * 1e3:.1f} ms wall (GPU busy {gpu / 1e4 / self.trace_wall:.1f} %)")
        print(f"{'kind':<34}{'ms':>10}{'% of GPU':>10}")
        for kind in sorted(by_kind, key=lambda k: -by_kind[k]):
            print(f"{kind:<34}{by_kind[kind] / 1e3:>10.1f}{100 * by_kind[kind] / gpu:>10.1f}")
        print("\ntop kernels")
        for name in sorted(by_name, key=lambda k: -by_name[k])[:15]:
            print(f"{by_name[name] / 1e3:>9.1f} ms  {kernel_kind(name):<26} {name[:90]}")
        self._report_gaps()

    def _report_gaps(self) -> None:
        kernels = [(e.time_range.start, e.time_range.end, kernel_kind(e.name))
                   for e in self._gpu_events()]
        gaps = idle_gaps(kernels)
        total = sum(us for us, _ in gaps.values())
        print(f"\nGPU idle between kernels (gaps over {GAP_MIN_US} us): {total / 1e3:.1f} ms")
        print(f"{'kernel before -> kernel after':<52}{'ms':>9}{'gaps':>7}{'mean us':>9}")
        for (before, after), (us, n) in sorted(gaps.items(), key=lambda kv: -kv[1][0])[:12]:
            print(f"{before + ' -> ' + after:<52}{us / 1e3:>9.2f}{n:>7}{us / n:>9.1f}")
        if self.host:
            host = [(e.time_range.start, e.time_range.end, e.name) for e in self.trace.events()
                    if e.device_type == torch.autograd.DeviceType.CPU]
            print_host_report(idle_spans(kernels, GAP_MIN_US),
                              [span for span in host
                               if span[2].startswith((PART_PREFIX, GC_PREFIX))],
                              [span for span in host if CUDA_CALL.match(span[2])], host)


def idle_gaps(kernels: list[tuple[float, float, str]]) -> dict[tuple[str, str], tuple[float, int]]:
    """Where the GPU sat idle: the gaps between the end of everything before a kernel and that
    kernel's start (µs), summed by (kind before, kind after) with their count, so idle at step
    boundaries (host-bound) tells itself apart from idle between the attention pieces."""
    gaps: dict[tuple[str, str], list] = defaultdict(lambda: [0.0, 0])
    for start, end, before, after in idle_spans(kernels, GAP_MIN_US):
        gap = gaps[(before, after)]
        gap[0] += end - start
        gap[1] += 1
    return {key: (us, n) for key, (us, n) in gaps.items()}
