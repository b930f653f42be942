"""A burst against `inference-engine serve`: N requests at once (small max_tokens), the
server's answers (200 or 503), their latency, the slowest health check meanwhile, and the
server's resident memory before, at its peak and after the burst (once idle).

Starts the server itself (the embedded model unless --server-args names another), on a free
port; prints a table last.

    python benchmarks/benchmark_overload.py --requests 2000 --server-args "--max-waiting-requests 64"
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import shlex
import socket
import subprocess
import sys
import time
from collections import Counter

import httpx


def rss_mib(pid: int) -> float:
    """Resident memory of the process and its children (TP workers, the template sandbox)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            direct = [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []
    return direct + [g for c in direct for g in _children(c)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(server_args: list[str], port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "inference_engine.entrypoints.cli", "serve", "--port",
               str(port), "--disable-log-stats", "--uvicorn-log-level", "warning", *server_args]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the server did not start")


def probe_health(url: str, timeout: float, stop, slowest) -> None:
    """In its own process (the burst's client would delay it): the slowest GET /health."""
    with httpx.Client(timeout=timeout) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                client.get(url + "/health")
            except httpx.TransportError:
                pass
            slowest.value = max(slowest.value, time.perf_counter() - started)
            time.sleep(0.2)


async def post_json(port: int, path: str, body: dict) -> int:
    """One request on its own connection, in plain HTTP/1.1: an HTTP client library would cost
    more CPU per request than the server spends refusing it, on the same cores."""
    payload = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                     "\r\n".encode() + payload)
        await writer.drain()
        status = await reader.readline()
        await reader.read()  # the rest, until the server closes
        return int(status.split()[1])
    finally:
        writer.close()


async def burst(port: int, n: int, timeout: float, pid: int) -> dict:
    results: list[tuple[object, float]] = []
    peak = [rss_mib(pid)]
    done = asyncio.Event()

    async def one(i: int) -> None:
        started = time.perf_counter()
        try:
            outcome = await asyncio.wait_for(post_json(port, "/v1/completions", {
                "prompt": f"Request {i}: tell me a story.", "max_tokens": 4 + i % 5,
                "ignore_eos": True}), timeout)
        except TimeoutError:
            outcome = "timeout"
        except (OSError, ValueError, IndexError) as exc:
            outcome = type(exc).__name__
        results.append((outcome, time.perf_counter() - started))

    async def watch_memory() -> None:
        while not done.is_set():
            peak.append(rss_mib(pid))
            await asyncio.sleep(0.2)

    stop, slowest = multiprocessing.Event(), multiprocessing.Value("d", 0.0)
    prober = multiprocessing.Process(target=probe_health,
                                     args=(f"http://127.0.0.1:{port}", timeout, stop, slowest))
    prober.start()
    watcher = asyncio.create_task(watch_memory())
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    done.set()
    await watcher
    stop.set()
    prober.join()
    return {"results": results, "health": slowest.value, "peak": max(peak), "elapsed": elapsed}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=300.0, help="the clients' timeout (s)")
    parser.add_argument("--server-args", default="", help="flags for `serve`, one string")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds idle after the burst before memory is read again")
    args = parser.parse_args()
    port = free_port()
    server = start_server(shlex.split(args.server_args), port)
    url = f"http://127.0.0.1:{port}"
    try:
        httpx.post(url + "/v1/completions", json={"prompt": "warm up", "max_tokens": 4},
                   timeout=120)
        time.sleep(2)
        before = rss_mib(server.pid)
        outcome = asyncio.run(burst(port, args.requests, args.timeout, server.pid))
        time.sleep(args.settle)
        after = rss_mib(server.pid)
        healthy = httpx.get(url + "/health", timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=60)
    counts = Counter(code for code, _ in outcome["results"])
    latency = {code: [t for c, t in outcome["results"] if c == code] for code in counts}
    print(f"\nserver flags: {args.server_args or '(defaults)'}; {os.cpu_count()} CPUs")
    print(f"{'answer':>10} {'count':>6} {'p50 s':>8} {'p99 s':>8} {'max s':>8}")
    for code in sorted(counts, key=str):
        times = latency[code]
        print(f"{code!s:>10} {counts[code]:>6} {percentile(times, 0.5):>8.2f} "
              f"{percentile(times, 0.99):>8.2f} {max(times):>8.2f}")
    print(f"burst {outcome['elapsed']:.1f} s; slowest health check {outcome['health']:.3f} s; "
          f"healthy after: {healthy}")
    print(f"RSS MiB: before {before:.0f}, peak {outcome['peak']:.0f}, after {after:.0f} "
          f"({100 * (after - before) / before:+.1f} %)")


if __name__ == "__main__":
    main()
