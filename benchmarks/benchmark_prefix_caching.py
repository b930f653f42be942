"""What prefix caching saves when requests share a long prefix (a chat's system prompt): the same
requests run without and with `enable_prefix_caching`, one engine after the other in one process.

Each request is a common prefix (the first `--prefix-len` tokens of the workload's longest
prompts, joined) followed by one ShareGPT prompt, generating `--output-len` tokens (EOS
ignored). Prints time, requests/s, prompt tokens computed and the cache's hit rate.

    python benchmarks/benchmark_prefix_caching.py --num-prompts 50 --prefix-len 512
    python benchmarks/benchmark_prefix_caching.py --preset llama3-8b --num-prompts 500
"""
import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "kernels"))

import torch  # noqa: E402
from bandwidth import print_table  # noqa: E402
from workload import DEFAULT_WORKLOAD, load_workload, preset_vocab_size  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="HF folder or GGUF file (default: embedded model)")
    p.add_argument("--preset", default=None, help="llama3-8b, llama2-7b, ... (dummy weights)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--workload", default=DEFAULT_WORKLOAD)
    p.add_argument("--num-prompts", type=int, default=50)
    p.add_argument("--prefix-len", type=int, default=512, help="tokens every prompt starts with")
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--cpu-kv-cache-space-gib", type=float, default=1.0)
    return p.parse_args()


def requests_with_common_prefix(args) -> list[list[int]]:
    """--num-prompts ShareGPT prompts behind one shared prefix, each cut to fit the model."""
    requests = load_workload(args.workload, vocab_size=preset_vocab_size(args.preset))
    prefix: list[int] = []
    for request in sorted(requests, key=lambda r: -len(r.prompt_token_ids)):
        prefix += request.prompt_token_ids
        if len(prefix) >= args.prefix_len:
            break
    room = args.max_model_len - args.output_len - args.prefix_len
    return [prefix[:args.prefix_len] + r.prompt_token_ids[:room]
            for r in requests[:args.num_prompts]]


def run(args, prompts: list[list[int]], prefix_caching: bool) -> list[object]:
    from inference_engine import LLM, SamplingParams
    dummy = args.preset is not None
    llm = LLM(args.preset or args.model, load_format="dummy" if dummy else "auto", dtype=args.dtype,
              max_model_len=args.max_model_len, cpu_kv_cache_space_gib=args.cpu_kv_cache_space_gib,
              enable_prefix_caching=prefix_caching, skip_tokenizer_init=dummy)
    params = SamplingParams(temperature=0, max_tokens=args.output_len, ignore_eos=True,
                            detokenize=not dummy)
    start = time.perf_counter()
    llm.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    engine = llm.llm_engine
    blocks = engine.scheduler.block_manager
    hit_rate = blocks.prefix_cache_hits / blocks.prefix_cache_queries if prefix_caching else 0.0
    row = ["on" if prefix_caching else "off", elapsed, len(prompts) / elapsed,
           engine.num_prompt_tokens_total, 100 * hit_rate]
    llm.shutdown()
    del llm, engine, blocks
    gc.collect()  # the second engine sizes its KV cache by the memory free when it starts
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


def main() -> None:
    args = parse_args()
    prompts = requests_with_common_prefix(args)
    rows = [run(args, prompts, prefix_caching) for prefix_caching in (False, True)]
    print(f"\n{len(prompts)} prompts of {sum(map(len, prompts)) / len(prompts):.0f} tokens on "
          f"average, {args.prefix_len} of them shared; {args.output_len} output tokens each")
    print_table(["prefix caching", "time s", "requests/s", "prompt tokens computed",
                 "hit rate %"], rows)


if __name__ == "__main__":
    main()
