"""How fast could any engine with our schedule run a workload? A roofline per step, on the CPU.

Replays the scheduler's policy over the workload (first come first served; every running
request decodes one token per step; waiting prompts join a step while --max-num-seqs and
--max-num-batched-tokens allow; every request generates exactly its output_len) and charges
each step the larger of reading the weights once and computing its tokens' matmuls, plus
reading the KV cache of its decode rows, plus a fixed overhead. Real kernels only add to this,
so the result bounds requests/s from above for this schedule. Defaults: Llama-3-8B shapes in
bf16 on an H100, with the matmul rate and copy bandwidth measured there (benchmarks/RESULTS.md).
`--chunked-prefill` replays prompts split into chunks that fill each step's token budget after
its decode rows (as the engine's --enable-chunked-prefill and vLLM's V1 scheduler do), so that
compute-bound prompt work spreads over memory-bound decode steps. `--scheduling-policy lof`
admits the longest outputs first (the engine's --scheduling-policy lof).

    python benchmarks/workload_floor.py --workload ../shared/workloads/sharegpt-1000.jsonl
"""
import argparse
import json

BUCKETS = [(1, 16), (17, 64), (65, 128), (129, 199), (200, 10**9)]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", required=True, help="JSONL with prompt_token_ids and output_len")
    p.add_argument("--num-prompts", type=int, default=1000)
    p.add_argument("--max-num-seqs", type=int, default=192)
    p.add_argument("--max-num-batched-tokens", type=int, default=8192)
    p.add_argument("--matmul-params", type=float, default=6.98e9,
                   help="parameters every token multiplies (Llama-3-8B without embeddings and head)")
    p.add_argument("--head-params", type=float, default=0.525e9, help="LM head, sampled rows only")
    p.add_argument("--kv-bytes-per-token", type=int, default=131072,
                   help="K and V over all layers (Llama-3-8B bf16: 32 x 8 x 128 x 2 x 2)")
    p.add_argument("--dtype-bytes", type=int, default=2)
    p.add_argument("--matmul-tflops", type=float, default=660.0,
                   help="sustained bf16 matmul rate (an H100's busy steps reached about 660)")
    p.add_argument("--bandwidth-gbs", type=float, default=3009.0,
                   help="device-to-device copy bandwidth (an H100: 3009)")
    p.add_argument("--step-overhead-ms", type=float, default=0.3,
                   help="per step: norms, activations, sampling, launch gaps")
    p.add_argument("--chunked-prefill", action="store_true",
                   help="replay prompts chunked to fill each step's token budget")
    p.add_argument("--scheduling-policy", default="fcfs", choices=["fcfs", "lof"],
                   help="the order prompts are admitted in: as given, or longest output first")
    return p.parse_args()


def replay(requests: list[tuple[int, int]], max_seqs: int, budget: int):
    """Yields, per step: (sampled rows: the running sequences, prompt tokens, decode rows'
    context lengths)."""
    waiting, running = list(range(len(requests))), {}  # index -> [tokens left, context]
    while waiting or running:
        contexts = [ctx for _, ctx in running.values()]
        tokens, prompt_tokens = len(contexts), 0
        while waiting and len(running) < max_seqs:
            prompt, output = requests[waiting[0]]
            # As the scheduler: decodes never keep out a step's first prompt.
            if (tokens + prompt if prompt_tokens else prompt) > budget:
                break
            i = waiting.pop(0)
            tokens += prompt
            prompt_tokens += prompt
            running[i] = [output, prompt]
        yield len(running), prompt_tokens, contexts
        for i in list(running):
            running[i][0] -= 1
            running[i][1] += 1
            if running[i][0] == 0:
                del running[i]


def replay_chunked(requests: list[tuple[int, int]], max_seqs: int, budget: int):
    """As replay(), with prompts chunked: each step's decode rows take the budget first, then the
    running requests' unfinished prompts and new ones (first come first served) fill the rest; a
    request samples its first token in the step that computes its prompt's last chunk."""
    waiting, running = list(range(len(requests))), {}  # index -> [prompt left, output left, context]
    while waiting or running:
        decoding = [i for i, (left, _, _) in running.items() if left == 0]
        room, prompt_tokens, prompts_done = budget - len(decoding), 0, []

        def take(i: int) -> None:
            nonlocal room, prompt_tokens
            chunk = min(running[i][0], room)
            running[i][0] -= chunk
            running[i][2] += chunk
            room -= chunk
            prompt_tokens += chunk
            if running[i][0] == 0:
                prompts_done.append(i)

        for i in [i for i, (left, _, _) in running.items() if left > 0]:
            if room > 0:
                take(i)
        while waiting and len(running) < max_seqs and room > 0:
            i = waiting.pop(0)
            running[i] = [requests[i][0], requests[i][1], 0]
            take(i)
        yield len(decoding) + len(prompts_done), prompt_tokens, [running[i][2] for i in decoding]
        for i in decoding + prompts_done:
            running[i][1] -= 1
            running[i][2] += i in decoding
            if running[i][1] == 0:
                del running[i]


def main() -> None:
    args = parse_args()
    with open(args.workload) as f:
        requests = [(len(r["prompt_token_ids"]), r["output_len"])
                    for _, r in zip(range(args.num_prompts), map(json.loads, f))]
    if args.scheduling_policy == "lof":  # a stable sort: ties keep their order, as the engine
        requests.sort(key=lambda r: -r[1])
    longest = max(p for p, _ in requests)
    if not args.chunked_prefill and longest > args.max_num_batched_tokens:
        raise SystemExit(f"--max-num-batched-tokens {args.max_num_batched_tokens} is below the "
                         f"longest prompt ({longest}), which the engine would not admit; "
                         "chunked prompts: --chunked-prefill")
    bandwidth, flops = args.bandwidth_gbs * 1e9, args.matmul_tflops * 1e12
    weights = args.dtype_bytes * (args.matmul_params + args.head_params)
    rows = {bucket: [0, 0, 0.0] for bucket in BUCKETS}  # steps, steps with prompts, seconds
    total = 0.0
    schedule = replay_chunked if args.chunked_prefill else replay
    for sampled, prompt_tokens, contexts in schedule(requests, args.max_num_seqs,
                                                     args.max_num_batched_tokens):
        decode_rows, context = len(contexts), sum(contexts)
        work = 2 * ((prompt_tokens + decode_rows) * args.matmul_params + sampled * args.head_params)
        step = (max(weights / bandwidth, work / flops) + context * args.kv_bytes_per_token / bandwidth
                + args.step_overhead_ms / 1e3)
        total += step
        row = next(rows[b] for b in BUCKETS if b[0] <= max(sampled, 1) <= b[1])
        row[0] += 1
        row[1] += prompt_tokens > 0
        row[2] += step
    print(f"{len(requests)} requests, {sum(p for p, _ in requests)} prompt + "
          f"{sum(o for _, o in requests)} output tokens; longest output {max(o for _, o in requests)}")
    print(f"{'sequences':>10} {'steps':>6} {'w/ prompts':>10} {'floor s':>8}")
    for (lo, hi), (steps, with_prompts, seconds) in rows.items():
        label = f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"
        print(f"{label:>10} {steps:>6} {with_prompts:>10} {seconds:>8.2f}")
    steps = sum(r[0] for r in rows.values())
    print(f"{'all':>10} {steps:>6} {sum(r[1] for r in rows.values()):>10} {total:>8.2f}")
    print(f"floor: {total:.2f} s, at most {len(requests) / total:.1f} requests/s")


if __name__ == "__main__":
    main()
