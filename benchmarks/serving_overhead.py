"""Where a streaming server's time goes per engine step, outside the model.

Starts `inference-engine serve` in a child process with timers around the async engine's loop
pass, LLMEngine.step (the step's input built in it) and the executor's execute_model (wall and
CPU time), sends the ShareGPT
workload at an infinite rate as streamed /v1/completions (benchmark_serving.py's requests), and
prints the client's TTFT / TPOT next to the server's per-pass split:

  python benchmarks/serving_overhead.py --client light --simulate-gpu-ms 8 -- \\
      --model /tmp/tiny-llama --load-format dummy --skip-tokenizer-init --max-num-seqs 256

`--simulate-gpu-ms` replaces execute_model by a GIL-free sleep and made-up tokens (the input is
still built, in LLMEngine.step): on a CPU machine this shows the host overhead as a
GPU server would see it. `--client light` reads the SSE stream without the openai SDK, whose
per-chunk parsing would otherwise share the CPU with the server on a small machine; `sdk` runs
benchmarks/benchmark_serving.py itself. `--switch-interval-ms` sets the server's GIL switch
interval (CPython's default: 5 ms), the longest the engine thread may wait for the GIL while the
event loop streams (0.5 ms measured worse than 5 ms on an H200: RESULTS.md). `--profile-top N`
(Python 3.12+) prints the N functions of the server's two threads with the most own and
cumulative time, from the first loop pass on.
"""
import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "benchmarks"), os.path.join(ROOT, "tests")]


def serve_with_timers(stats_path: str, simulate_gpu_ms: float, switch_interval_ms: float | None,
                      profile_top: int, serve_args: list[str]) -> None:
    """Runs the server (in the child) with the timers patched in; writes them at exit. With
    `profile_top`, cProfile runs from the first loop pass to exit, and its top functions go to a
    text file beside the stats: on Python 3.12+ one profiler sees every thread (the engine's
    steps and the event loop together; it is built on sys.monitoring, which is process-wide)."""
    import atexit
    import cProfile
    import io
    import pstats
    if switch_interval_ms is not None:
        sys.setswitchinterval(switch_interval_ms / 1e3)

    from inference_engine.engine import async_engine, llm_engine
    from inference_engine.entrypoints.cli import main
    totals = dict.fromkeys(["passes", "pass_s", "step_s", "step_cpu_s", "model_s",
                            "model_cpu_s", "process_cpu_s"], 0.0)
    first_cpu = []

    profile = cProfile.Profile() if profile_top else None

    def timed(fn, wall: str, cpu: str):
        def wrapper(*args, **kwargs):
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[wall] += time.perf_counter() - start
                totals[cpu] += time.thread_time() - start_cpu
        return wrapper

    def simulated_model(executor, vocab_size: int):
        """Made-up samples, already on the host: the engine must run synchronously."""
        from types import SimpleNamespace

        from inference_engine.sample.device_samples import Sample, SamplerOutput

        def execute_model(model_input, meta):
            time.sleep(simulate_gpu_ms / 1e3)  # the GPU's share of a step: no GIL held
            samples = [[Sample(((row.output_token_ids or row.prompt_token_ids)[-1] + 1 + j)
                               % vocab_size, -0.5, None)
                        for j in range(row.num_samples)] for row in meta.rows]
            out = SamplerOutput(samples, [[] for _ in meta.prompt_rows], meta)
            return SimpleNamespace(meta=meta, read=lambda: out)  # a DeviceSamples, read
        return execute_model

    llm_engine.LLMEngine.step = timed(llm_engine.LLMEngine.step, "step_s", "step_cpu_s")
    step_once = async_engine.AsyncLLMEngine._step_once

    async def timed_step_once(self, tracker):
        if not first_cpu:  # the first pass: patch this engine's executor
            first_cpu.append(time.process_time())
            if profile is not None:  # from here: not the imports and the warm-up
                profile.enable()
            executor = self.engine.executor
            execute = executor.execute_model
            if simulate_gpu_ms:
                vocab_size = self.engine.config.model_config.hf_config.vocab_size
                execute = simulated_model(executor, vocab_size)
            executor.execute_model = timed(execute, "model_s", "model_cpu_s")
        start = time.perf_counter()
        await step_once(self, tracker)
        totals["pass_s"] += time.perf_counter() - start
        totals["passes"] += 1
        totals["process_cpu_s"] = time.process_time() - first_cpu[0]

    async_engine.AsyncLLMEngine._step_once = timed_step_once

    @atexit.register
    def write():
        with open(stats_path, "w") as f:
            json.dump(totals, f)
        if profile is not None:
            profile.disable()
            text = io.StringIO()
            for order in ("tottime", "cumulative"):
                text.write(f"=== cProfile of the server, every thread: top {profile_top} by "
                           f"{order}\n")
                pstats.Stats(profile, stream=text).sort_stats(order).print_stats(profile_top)
            with open(stats_path + ".profile.txt", "w") as f:
                f.write(text.getvalue())

    if simulate_gpu_ms:
        serve_args = [*serve_args, "--no-async-scheduling"]
    main(["serve", *serve_args])


async def light_client(port: int, model: str, requests) -> list[tuple[float, float, int]]:
    """(ttft, tpot, output_len) per request, read as raw SSE over HTTP/1.1."""
    async def one(req):
        body = json.dumps({"model": model, "prompt": req.prompt_token_ids, "stream": True,
                           "max_tokens": req.output_len, "temperature": 0,
                           "ignore_eos": True}).encode()
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        first, seen = None, b""
        while data := await reader.read(65536):
            if first is None:
                seen += data
                if b'"choices":[{' in seen:  # the first chunk with a choice
                    first = time.perf_counter()
        end = time.perf_counter()
        writer.close()
        first = first or end
        return first - start, (end - first) / max(req.output_len - 1, 1), req.output_len
    return await asyncio.gather(*(one(req) for req in requests))


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run(args) -> None:
    from utils.server import free_port, wait_until
    from workload import load_workload
    port = free_port()
    fd, stats_path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    log = open(args.server_log, "w")
    server = subprocess.Popen(
        [sys.executable, __file__, "--child-stats", stats_path,
         "--simulate-gpu-ms", str(args.simulate_gpu_ms), "--profile-top", str(args.profile_top),
         *(["--switch-interval-ms", str(args.switch_interval_ms)]
           if args.switch_interval_ms is not None else []),
         "--", *args.serve_args,
         "--port", str(port), "--disable-log-stats", "--uvicorn-log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        import httpx

        def healthy():
            if server.poll() is not None:
                raise RuntimeError(f"the server exited; see {args.server_log}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
            except httpx.TransportError:
                return False
        wait_until(healthy, 600, 0.5, "server health")
        model = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"][0]["id"]
        requests = load_workload(args.workload, args.num_prompts)
        if args.client == "light":
            start = time.perf_counter()
            results = asyncio.run(light_client(port, model, requests))
            elapsed = time.perf_counter() - start
            tpot = [r[1] * 1e3 for r in results if r[2] > 1]
            row = {"ttft_p50_ms": percentile([r[0] * 1e3 for r in results], 0.5),
                   "tpot_p50_ms": percentile(tpot, 0.5), "tpot_p99_ms": percentile(tpot, 0.99),
                   "out_tok_per_s": sum(r[2] for r in results) / elapsed}
        else:
            out = subprocess.run(
                [sys.executable, os.path.join(ROOT, "benchmarks", "benchmark_serving.py"),
                 "--base-url", f"http://127.0.0.1:{port}", "--workload", args.workload,
                 "--num-prompts", str(args.num_prompts), "--request-rate",
                 str(args.request_rate), "--json"],
                check=True, capture_output=True, text=True).stdout
            row = json.loads(out.splitlines()[0])
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=120)
        log.close()
    with open(stats_path) as f:
        t = json.load(f)
    os.unlink(stats_path)
    if args.profile_top:
        with open(stats_path + ".profile.txt") as f:
            print(f.read())
        os.unlink(stats_path + ".profile.txt")
    n = max(t["passes"], 1)

    def ms(key: str) -> float:
        return 1e3 * t[key] / n
    print(f"client ({args.client}): TTFT p50 {row['ttft_p50_ms']:.0f} ms, TPOT p50 "
          f"{row['tpot_p50_ms']:.2f} ms, p99 {row['tpot_p99_ms']:.2f} ms, "
          f"{row['out_tok_per_s']:.0f} output tok/s")
    print(f"server, per loop pass ({t['passes']:.0f} passes), ms:")
    print(f"{'':24}{'wall':>8}{'CPU':>8}")
    print(f"{'loop pass':24}{ms('pass_s'):8.3f}{ms('process_cpu_s'):8.3f}")
    print(f"{'  engine step':24}{ms('step_s'):8.3f}{ms('step_cpu_s'):8.3f}")
    print(f"{'    execute_model':24}{ms('model_s'):8.3f}{ms('model_cpu_s'):8.3f}")
    print(f"{'    step minus model':24}{ms('step_s') - ms('model_s'):8.3f}"
          f"{ms('step_cpu_s') - ms('model_cpu_s'):8.3f}")
    print(f"{'  event loop (CPU)':24}{'':8}{ms('process_cpu_s') - ms('step_cpu_s'):8.3f}")


def main() -> None:
    from workload import DEFAULT_WORKLOAD
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--client", choices=["light", "sdk"], default="light")
    p.add_argument("--simulate-gpu-ms", type=float, default=0.0,
                   help="replace the model by a sleep this long per step (0: run the model)")
    p.add_argument("--switch-interval-ms", type=float,
                   help="the server's sys.setswitchinterval, in ms (default: CPython's)")
    p.add_argument("--num-prompts", type=int, default=200)
    p.add_argument("--request-rate", type=float, default=float("inf"),
                   help="requests/s of the sdk client (the light client sends all at once)")
    p.add_argument("--workload", default=DEFAULT_WORKLOAD)
    p.add_argument("--server-log", default=os.path.join(tempfile.gettempdir(),
                                                        "serving_overhead_server.log"))
    p.add_argument("--profile-top", type=int, default=0,
                   help="cProfile the server (Python 3.12+: every thread); print this many "
                        "functions (slows the server: its TPOT is not the unprofiled one)")
    p.add_argument("--child-stats", help=argparse.SUPPRESS)
    p.add_argument("serve_args", nargs=argparse.REMAINDER,
                   help="after --: the serve flags (--model ... and so on)")
    args = p.parse_args()
    if args.profile_top and sys.version_info < (3, 12):
        p.error("--profile-top needs Python 3.12+ (before it, cProfile sees one thread only)")
    if args.serve_args[:1] == ["--"]:
        args.serve_args = args.serve_args[1:]
    if args.child_stats:
        serve_with_timers(args.child_stats, args.simulate_gpu_ms, args.switch_interval_ms,
                          args.profile_top, args.serve_args)
    else:
        run(args)


if __name__ == "__main__":
    main()
