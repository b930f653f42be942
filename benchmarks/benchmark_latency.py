"""Latency of one batch: prefill time, then per-token decode time (EOS ignored)."""
import argparse
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default=None)
    p.add_argument("--preset", default=None, help="llama3-8b, llama2-7b, llama2-70b, "
                   "llama3-8b-gptq/-fp8/-int8 (dummy weights)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--input-len", type=int, default=512)
    p.add_argument("--output-len", type=int, default=128)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--tensor-parallel-size", type=int, default=1)
    p.add_argument("--enforce-eager", action="store_true")
    args = p.parse_args()

    from inference_engine import LLM, SamplingParams
    llm = LLM(args.preset or args.model, load_format="dummy" if args.preset else "auto",
              dtype=args.dtype, max_num_seqs=max(args.batch_size, 1),
              tensor_parallel_size=args.tensor_parallel_size, enforce_eager=args.enforce_eager,
              skip_tokenizer_init=args.preset is not None)
    vocab = llm.llm_engine.config.model_config.hf_config.vocab_size
    prompts = [{"prompt_token_ids": torch.randint(0, min(vocab, 32000), (args.input_len,)).tolist()}
               for _ in range(args.batch_size)]

    def run(output_len: int) -> float:
        params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True,
                                detokenize=args.preset is None)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        llm.generate(prompts, params, use_tqdm=False)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter() - start

    run(4)  # warm-up
    prefill = sorted(run(1) for _ in range(args.iters))[args.iters // 2]
    total = sorted(run(args.output_len) for _ in range(args.iters))[args.iters // 2]
    per_token = (total - prefill) / max(args.output_len - 1, 1)
    print(f"{'batch':>6}{'input':>7}{'output':>8}{'prefill ms':>12}{'decode ms/token':>17}{'total s':>9}")
    print(f"{args.batch_size:>6}{args.input_len:>7}{args.output_len:>8}{prefill * 1e3:>12.1f}"
          f"{per_token * 1e3:>17.2f}{total:>9.2f}")


if __name__ == "__main__":
    main()
