"""n-gram speculative decoding against plain decoding on the same requests, in one process:
wall time, output tokens/s, drafts kept, tokens a request gets per step.

Two workloads from ShareGPT's first prompts: `chat` (the prompts as they are: drafts rarely
hold) and `quote` (each prompt with "Repeat the text above word for word." after it, greedy:
the output quotes its prompt, where prompt lookup pays). Every request decodes `--output-len`
tokens at most (EOS ends it), greedily, so both runs produce the same tokens."""
import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from workload import DEFAULT_WORKLOAD, load_workload  # noqa: E402

QUOTE = "\n\nRepeat the text above word for word."


def run(args, prompts, spec: dict | None) -> dict:
    from inference_engine import LLM, SamplingParams
    llm = LLM(args.model, dtype=args.dtype, max_model_len=args.max_model_len,
              max_num_seqs=args.batch_size, speculative_config=spec)
    params = SamplingParams(temperature=0.0, max_tokens=args.output_len)
    llm.generate(prompts[:1], params, use_tqdm=False)  # warm-up
    engine = llm.llm_engine
    drafts0, kept0 = engine.num_draft_tokens_total, engine.num_accepted_tokens_total
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    tokens = [list(o.outputs[0].token_ids) for o in outputs]
    drafts = engine.num_draft_tokens_total - drafts0
    kept = engine.num_accepted_tokens_total - kept0
    llm.shutdown()
    del llm
    gc.collect()
    return {"time": elapsed, "tokens": tokens, "drafts": drafts, "kept": kept}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=None, help="default: the embedded model")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--workload", default=DEFAULT_WORKLOAD)
    p.add_argument("--mode", choices=["chat", "quote"], default="quote")
    p.add_argument("--num-prompts", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=1, help="max_num_seqs")
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--max-prompt-chars", type=int, default=1200)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--num-speculative-tokens", type=int, nargs="+", default=[3, 5])
    args = p.parse_args()

    prompts = [r.prompt[:args.max_prompt_chars] + (QUOTE if args.mode == "quote" else "")
               for r in load_workload(args.workload, args.num_prompts)]
    plain = run(args, prompts, None)
    n_out = sum(map(len, plain["tokens"]))
    print(f"{len(prompts)} requests ({args.mode}), {n_out} output tokens, batch {args.batch_size}")
    print(f"{'decoding':<18}{'time s':>9}{'out tok/s':>11}{'speedup':>9}{'kept %':>8}"
          f"{'tok/step':>10}  same tokens")
    print(f"{'plain':<18}{plain['time']:>9.2f}{n_out / plain['time']:>11.1f}{1.0:>9.2f}"
          f"{'-':>8}{1.0:>10.2f}  -")
    for k in args.num_speculative_tokens:
        spec = run(args, prompts, {"method": "ngram", "num_speculative_tokens": k})
        kept = 100 * spec["kept"] / spec["drafts"] if spec["drafts"] else 0.0
        # Steps a request took: one per token not carried by a kept draft.
        per_step = n_out / max(n_out - spec["kept"], 1)
        print(f"{'ngram k=' + str(k):<18}{spec['time']:>9.2f}{n_out / spec['time']:>11.1f}"
              f"{plain['time'] / spec['time']:>9.2f}{kept:>8.1f}{per_step:>10.2f}  "
              f"{spec['tokens'] == plain['tokens']}")


if __name__ == "__main__":
    main()
