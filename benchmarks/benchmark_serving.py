"""Online serving benchmark: ShareGPT requests sent to a running server at a Poisson rate,
streamed; prints TTFT and TPOT percentiles and throughput."""
import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workload import DEFAULT_WORKLOAD, load_workload  # noqa: E402


async def one_request(client, model: str, prompt_ids: list[int], output_len: int) -> dict:
    start = time.perf_counter()
    first = None
    stream = await client.completions.create(
        model=model, prompt=prompt_ids, max_tokens=output_len, temperature=0, stream=True,
        extra_body={"ignore_eos": True})
    async for chunk in stream:
        # The first chunk with a choice carries the first token, even when its text is empty
        # (a server without a tokenizer, or bytes held back until a character is whole).
        if chunk.choices and first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    ttft = (first or end) - start
    tpot = (end - (first or end)) / max(output_len - 1, 1)
    return {"ttft": ttft, "tpot": tpot, "latency": end - start, "output_len": output_len}


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def run(args) -> None:
    from openai import AsyncOpenAI
    client = AsyncOpenAI(base_url=f"{args.base_url}/v1", api_key=args.api_key, max_retries=0,
                         timeout=3600)
    model = (await client.models.list()).data[0].id
    requests = load_workload(args.workload, args.num_prompts)
    rng = random.Random(args.seed)
    tasks = []
    start = time.perf_counter()
    for req in requests:
        tasks.append(asyncio.create_task(
            one_request(client, model, req.prompt_token_ids, req.output_len)))
        if args.request_rate != float("inf"):
            await asyncio.sleep(rng.expovariate(args.request_rate))
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    ttft = [r["ttft"] * 1e3 for r in results]
    tpot = [r["tpot"] * 1e3 for r in results if r["output_len"] > 1]
    out_tokens = sum(r["output_len"] for r in results)
    row = {"rate": args.request_rate, "requests": len(results), "duration_s": elapsed,
           "req_per_s": len(results) / elapsed, "out_tok_per_s": out_tokens / elapsed,
           "ttft_p50_ms": percentile(ttft, 0.5), "ttft_p99_ms": percentile(ttft, 0.99),
           "tpot_p50_ms": percentile(tpot, 0.5), "tpot_p99_ms": percentile(tpot, 0.99)}
    if args.json:
        print(json.dumps(row))
    print(f"{'rate':>6}{'req/s':>8}{'out tok/s':>11}{'TTFT p50':>10}{'TTFT p99':>10}"
          f"{'TPOT p50':>10}{'TPOT p99':>10}  (ms)")
    print(f"{args.request_rate:>6}{row['req_per_s']:>8.2f}{row['out_tok_per_s']:>11.1f}"
          f"{row['ttft_p50_ms']:>10.1f}{row['ttft_p99_ms']:>10.1f}{row['tpot_p50_ms']:>10.2f}"
          f"{row['tpot_p99_ms']:>10.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000")
    p.add_argument("--api-key", default="EMPTY")
    p.add_argument("--workload", default=DEFAULT_WORKLOAD)
    p.add_argument("--num-prompts", type=int, default=200)
    p.add_argument("--request-rate", type=float, default=float("inf"),
                   help="requests per second (Poisson); inf sends all at once")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="also print the row as JSON")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
