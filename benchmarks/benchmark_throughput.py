"""Offline throughput over a ShareGPT workload: every request generates exactly its reference
output length (EOS ignored). Prints requests/s and tokens/s, optionally beside transformers."""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from workload import DEFAULT_WORKLOAD, load_workload, preset_vocab_size  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=None, help="HF folder or GGUF file (default: embedded model)")
    p.add_argument("--preset", default=None, help="llama3-8b, llama2-7b, llama2-70b, bloom-176b, qwen3-30b-a3b; llama3-8b-gptq, "
                        "-fp8, -int8: its quantized checkpoints (dummy weights)")
    p.add_argument("--load-format", default="auto")
    p.add_argument("--model-impl", default="auto", choices=["auto", "native", "transformers"],
                   help="transformers: transformers' own model on the paged cache (the fallback)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--workload", default=DEFAULT_WORKLOAD)
    p.add_argument("--num-prompts", type=int, default=1000)
    p.add_argument("--max-num-seqs", type=int, default=192)
    p.add_argument("--max-num-batched-tokens", type=int, default=None)
    p.add_argument("--max-model-len", type=int, default=None)
    p.add_argument("--block-size", type=int, default=16, help="KV-cache block size in tokens")
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--cpu-kv-cache-space-gib", type=float, default=4.0)
    p.add_argument("--enforce-eager", action="store_true")
    p.add_argument("--kv-cache-dtype", default="auto", help="auto or fp8 (e4m3, no scale)")
    p.add_argument("--quantization", default=None, help="fp8: linear weights in FP8 (on load)")
    p.add_argument("--enable-chunked-prefill", action="store_true",
                   help="prompts longer than the step's budget left are computed in chunks")
    p.add_argument("--enable-prefix-caching", action="store_true",
                   help="prompts share the cached blocks of common prefixes (the warm-up's two "
                        "prompts are cached too)")
    p.add_argument("--scheduling-policy", default="fcfs", choices=["fcfs", "lof"],
                   help="lof: longest max_tokens (here each request's output length) first")
    p.add_argument("--piecewise-graph-max-tokens", type=int, default=None, metavar="N",
                   help="steps with prompts of up to N tokens replay piecewise CUDA graphs "
                        "(default: 1024 with TP=1; 0: off, such steps run eagerly)")
    p.add_argument("--async-scheduling", action=argparse.BooleanOptionalAction, default=None,
                   help="launch each step before reading the last one's tokens (default: on "
                        "for CUDA with TP=1; --profile turns it off, its timers synchronise)")
    p.add_argument("--compare-hf", action="store_true",
                   help="also run transformers' continuous batching (init_continuous_batching)")
    p.add_argument("--compare-hf-generate", action="store_true",
                   help="also run transformers' generate, one request at a time")
    p.add_argument("--plot", default=None, help="save a bar chart of requests/s to this PNG")
    p.add_argument("--profile", action="store_true",
                   help="time each part of a step (synchronises the GPU around the model call)")
    p.add_argument("--trace-steps", type=int, nargs=2, default=None, metavar=("FIRST", "END"),
                   help="trace these steps' GPU kernels with torch.profiler (without --profile: "
                        "nothing synchronised, async scheduling kept; adds the GPU's busy share)")
    p.add_argument("--trace-host", action="store_true",
                   help="with --trace-steps (no --profile): trace the host too, and charge each "
                        "GPU idle gap to the engine part and CUDA call the host was in")
    p.add_argument("--attention-split-blocks", type=int, default=None, metavar="N",
                   help="GPU decode attention: v1 from N (sequence, KV head) pairs, v2 partitions "
                        "until N blocks (to compare with the default's; TP=1, in-process only)")
    p.add_argument("--attention-v2-blocks", type=int, default=None, metavar="N",
                   help="GPU decode attention: v2 partitions halved until N blocks only (the "
                        "default's 2048; TP=1, in-process only)")
    p.add_argument("--attention-v1-pairs", type=int, default=None, metavar="N",
                   help="GPU decode attention on the tensor cores: v1 from N (sequence, KV head) "
                        "pairs (the default's 112; TP=1, in-process only)")
    return p.parse_args()


def set_attention_split(blocks: int | None, v2_blocks: int | None,
                        v1_pairs: int | None = None) -> None:
    from inference_engine.ops import _compiled
    if blocks is not None:
        _compiled._MIN_V2_BLOCKS["cuda"] = blocks
        _compiled._V1_MIN_SEQ_HEADS["cuda"] = _compiled._V1_MIN_SEQ_HEADS["cuda_mma"] = blocks
    if v2_blocks is not None:
        _compiled._MIN_V2_BLOCKS["cuda"] = v2_blocks
    if v1_pairs is not None:
        _compiled._V1_MIN_SEQ_HEADS["cuda_mma"] = v1_pairs


def run_engine(args, requests) -> tuple[float, float]:
    from inference_engine import LLM, SamplingParams
    # Random weights have no tokenizer of their own to detokenize with.
    dummy = args.preset is not None or args.load_format == "dummy"
    llm = LLM(args.preset or args.model,
              load_format="dummy" if args.preset else args.load_format, dtype=args.dtype,
              max_num_seqs=args.max_num_seqs, max_num_batched_tokens=args.max_num_batched_tokens,
              max_model_len=args.max_model_len, block_size=args.block_size,
              tensor_parallel_size=args.tensor_parallel_size,
              gpu_memory_utilization=args.gpu_memory_utilization,
              cpu_kv_cache_space_gib=args.cpu_kv_cache_space_gib, enforce_eager=args.enforce_eager,
              kv_cache_dtype=args.kv_cache_dtype, enable_prefix_caching=args.enable_prefix_caching,
              quantization=args.quantization, model_impl=args.model_impl,
              enable_chunked_prefill=args.enable_chunked_prefill,
              scheduling_policy=args.scheduling_policy,
              skip_tokenizer_init=dummy, piecewise_graph_max_tokens=args.piecewise_graph_max_tokens,
              async_scheduling=False if args.profile else args.async_scheduling)
    params = [SamplingParams(temperature=0, ignore_eos=True, max_tokens=r.output_len,
                             detokenize=not dummy) for r in requests]
    prompts = [{"prompt_token_ids": r.prompt_token_ids} for r in requests]
    llm.generate(prompts[:2], params[:2], use_tqdm=False)  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    profile = None
    if args.profile or args.trace_steps:
        from step_profile import StepProfile
        profile = StepProfile(llm.llm_engine, tuple(args.trace_steps) if args.trace_steps else None,
                              timers=args.profile, host=args.trace_host)
    start = time.perf_counter()
    outputs = llm.generate(prompts, params)
    elapsed = time.perf_counter() - start
    if profile is not None:
        profile.report()
    for out, req in zip(outputs, requests):
        assert len(out.outputs[0].token_ids) == req.output_len, "a request stopped early"
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0
    # Printed before the shutdown too: a hang there must not take this figure along.
    print(f"inference-engine: {elapsed:.1f} s, {len(requests) / elapsed:.3f} requests/s", flush=True)
    if args.enable_prefix_caching:
        blocks = llm.llm_engine.scheduler.block_manager
        print(f"prefix cache: {blocks.prefix_cache_hits} of {blocks.prefix_cache_queries} prompt "
              "tokens found", flush=True)
    llm.shutdown()
    return elapsed, peak


def main() -> None:
    args = parse_args()
    requests = load_workload(args.workload, args.num_prompts, preset_vocab_size(args.preset))
    prompt_tokens = sum(len(r.prompt_token_ids) for r in requests)
    output_tokens = sum(r.output_len for r in requests)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    set_attention_split(args.attention_split_blocks, args.attention_v2_blocks,
                        args.attention_v1_pairs)
    elapsed, peak = run_engine(args, requests)
    rows.append(("inference-engine", elapsed, peak))
    if args.compare_hf or args.compare_hf_generate:
        from hf_baselines import load_hf_model, run_hf_continuous_batching, run_hf_generate
        dtype = {"auto": torch.float32 if device == "cpu" else torch.bfloat16,
                 "float32": torch.float32, "bfloat16": torch.bfloat16,
                 "float16": torch.float16}[args.dtype]
        model = load_hf_model(args.model, args.preset, dtype, device)
        if args.compare_hf:
            rows.append(("transformers continuous batch",
                         run_hf_continuous_batching(model, requests, device), 0.0))
        if args.compare_hf_generate:
            rows.append(("transformers generate", run_hf_generate(model, requests, device), 0.0))
    print(f"\n{len(requests)} requests, {prompt_tokens} prompt + {output_tokens} output tokens, "
          f"device {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}")
    print(f"{'system':<30}{'time s':>10}{'req/s':>10}{'out tok/s':>12}{'total tok/s':>13}"
          f"{'peak GiB':>10}{'t/ours':>8}")
    for name, t, peak in rows:
        print(f"{name:<30}{t:>10.1f}{len(requests) / t:>10.2f}{output_tokens / t:>12.1f}"
              f"{(prompt_tokens + output_tokens) / t:>13.1f}{peak:>10.2f}{t / rows[0][1]:>8.2f}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar([r[0] for r in rows], [len(requests) / r[1] for r in rows])
        ax.set_ylabel("requests / s")
        ax.set_title(f"{args.preset or 'embedded model'}: {len(requests)} ShareGPT requests")
        fig.tight_layout()
        fig.savefig(args.plot)


if __name__ == "__main__":
    main()
