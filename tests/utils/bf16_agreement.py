"""How closely greedy generators agree in bfloat16 on the embedded model: our engine vs
transformers, and, for scale, transformers against itself (bfloat16 vs float32, its eager
attention vs its default sdpa attention, and its matmuls summed in another order).

Greedy decoding in a 16-bit dtype amplifies any rounding difference: a logit that moves by one
ulp flips a near-tie, and from there the two continuations drift apart. The agreement is reported
two ways, position by position and as the common prefix of each pair.

    OMP_NUM_THREADS=1 python tests/utils/bf16_agreement.py --prompts 20 --max-prompt-len 512
    ... --torch-ops rms_norm,paged_attention   # run these ops on their torch references (CPU)
    ... --one-by-one                           # our engine on one prompt at a time
    ... --device cuda                          # transformers on the GPU too
    ... --near-ties 5                          # do ours and transformers part at near-ties?
"""
import argparse
import contextlib
import json
import os
import sys
import time

import torch


def agreement(got: list[list[int]], expected: list[list[int]]) -> tuple[float, float]:
    """(position-wise agreement, mean common-prefix fraction) of two lists of token lists."""
    same = prefix = total = 0
    for a, b in zip(got, expected):
        same += sum(x == y for x, y in zip(a, b))
        prefix += next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        total += len(b)
    return same / total, prefix / total


def workload_prompts(count: int, max_len: int | None = None) -> list[list[int]]:
    """The first `count` ShareGPT prompts' token ids ($SHAREGPT_WORKLOAD, else the shared
    workload), each cut to its first `max_len` tokens (None: whole)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
    from workload import DEFAULT_WORKLOAD, load_workload
    path = os.environ.get("SHAREGPT_WORKLOAD", DEFAULT_WORKLOAD)
    return [r.prompt_token_ids[:max_len] for r in load_workload(path, num_prompts=count)]


def hf_outputs(dtype: torch.dtype, prompts: list[list[int]], max_tokens: int,
               device: str = "cpu", attention: str = "sdpa") -> list[list[int]]:
    """transformers' greedy tokens (EOS ignored) for each prompt, on the embedded model."""
    from transformers import AutoModelForCausalLM

    from utils.hf_checkpoint import embedded_hf_checkpoint
    from utils.oracle import hf_greedy
    model = AutoModelForCausalLM.from_pretrained(embedded_hf_checkpoint(), dtype=dtype,
                                                 attn_implementation=attention)
    model = model.to(device).eval()
    return [hf_greedy(model, ids, max_tokens, None) for ids in prompts]


@contextlib.contextmanager
def split_k_matmuls():
    """transformers' linear layers with only their summation order changed: each output is two
    half-length dot products in float32, added and rounded once, as a different matmul kernel (or
    the same kernel at another batch size) would sum. The rounding points stay transformers'."""
    linear = torch.nn.functional.linear

    def split_k(x, w, b=None):
        k = x.shape[-1] // 2
        y = linear(x[..., :k].float(), w[:, :k].float())
        y = y + linear(x[..., k:].float(), w[:, k:].float())
        return (y if b is None else y + b.float()).to(x.dtype)

    torch.nn.functional.linear = split_k
    try:
        yield
    finally:
        torch.nn.functional.linear = linear


def engine_outputs(dtype: str, prompts: list[list[int]], max_tokens: int,
                   batched: bool = True) -> list[list[int]]:
    """Our engine's greedy tokens (EOS ignored), all prompts in one batch or one at a time."""
    from inference_engine import LLM, SamplingParams
    llm = LLM(dtype=dtype, max_model_len=2048, cpu_kv_cache_space_gib=0.5,
              gpu_memory_utilization=0.3)
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True)
    batches = [prompts] if batched else [[ids] for ids in prompts]
    outs = [out for batch in batches
            for out in llm.generate(prompt_token_ids=batch, sampling_params=params, use_tqdm=False)]
    llm.shutdown()
    return [out.outputs[0].token_ids for out in outs]


def near_tie_report(prompts: list[list[int]], max_tokens: int, k: int, device: str) -> str:
    """Whether ours and transformers (both bfloat16) part only at near-ties (see near_ties)."""
    from transformers import AutoModelForCausalLM

    from inference_engine import LLM, SamplingParams
    from utils.hf_checkpoint import embedded_hf_checkpoint
    from utils.near_ties import engine_generation, first_divergences, hf_greedy_top, summary
    llm = LLM(dtype="bfloat16", max_model_len=2048, cpu_kv_cache_space_gib=0.5,
              gpu_memory_utilization=0.3)
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True, logprobs=k)
    ours = [engine_generation(out.outputs[0]) for out in
            llm.generate(prompt_token_ids=prompts, sampling_params=params, use_tqdm=False)]
    llm.shutdown()
    model = AutoModelForCausalLM.from_pretrained(embedded_hf_checkpoint(), dtype=torch.bfloat16)
    model = model.to(device).eval()
    theirs = [hf_greedy_top(model, ids, max_tokens, k) for ids in prompts]
    divergences = first_divergences(ours, theirs)
    lines = [f"  prompt {d.prompt} at {d.position}: ours {d.ours} (in their top-{k}: "
             f"{d.ours_in_their_top}, gap {d.gap}), theirs {d.theirs} (in our top-{k}: "
             f"{d.theirs_in_our_top})" for d in divergences]
    return "\n".join([summary(divergences, len(prompts)), *lines])


def force_torch_ops(names: list[str], device_type: str = "cpu") -> None:
    """Makes the named ops run their plain-PyTorch references on tensors of this device type."""
    from inference_engine.ops import _dispatch
    for name in names:
        _dispatch._CHOSEN[(name, device_type)] = "torch"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--max-prompt-len", type=int, default=512)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="where transformers runs")
    parser.add_argument("--torch-ops", default="", help="comma-separated ops to run on torch")
    parser.add_argument("--one-by-one", action="store_true", help="our engine unbatched")
    parser.add_argument("--only-ours", action="store_true",
                        help="skip transformers' self-comparisons (float32, eager)")
    parser.add_argument("--hf-cache", help="JSON file keeping transformers' tokens between runs")
    parser.add_argument("--near-ties", type=int, metavar="K",
                        help="instead: check each first divergence against both sides' top-K")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
    force_torch_ops([n for n in args.torch_ops.split(",") if n], args.device)
    prompts = workload_prompts(args.prompts, args.max_prompt_len)
    if args.near_ties:
        print(near_tie_report(prompts, args.max_tokens, args.near_ties, args.device))
        return
    cache = {}
    if args.hf_cache and os.path.exists(args.hf_cache):
        with open(args.hf_cache) as f:
            cache = json.load(f)

    def hf(dtype: torch.dtype, attention: str = "sdpa", split_k: bool = False) -> list[list[int]]:
        key = f"{args.device}-{args.prompts}-{args.max_prompt_len}-{args.max_tokens}-{dtype}-{attention}"
        key += "-split-k" if split_k else ""
        if key not in cache:
            with split_k_matmuls() if split_k else contextlib.nullcontext():
                cache[key] = hf_outputs(dtype, prompts, args.max_tokens, args.device, attention)
        return cache[key]

    start = time.perf_counter()
    hf_bf16 = hf(torch.bfloat16)
    ours = engine_outputs("bfloat16", prompts, args.max_tokens, not args.one_by_one)
    rows = [("ours bf16 vs transformers bf16", agreement(ours, hf_bf16))]
    if not args.only_ours:
        hf_fp32 = hf(torch.float32)
        rows += [("transformers bf16 vs fp32", agreement(hf_bf16, hf_fp32)),
                 ("transformers bf16 eager vs sdpa", agreement(hf(torch.bfloat16, "eager"), hf_bf16)),
                 ("transformers bf16 split-K vs plain",
                  agreement(hf(torch.bfloat16, split_k=True), hf_bf16)),
                 ("ours bf16 vs transformers fp32", agreement(ours, hf_fp32))]
    if args.hf_cache:
        with open(args.hf_cache, "w") as f:
            json.dump(cache, f)
    print(f"{len(prompts)} prompts x {args.max_tokens} tokens, {time.perf_counter() - start:.0f} s")
    print(f"{'comparison':<34}{'position-wise':>15}{'common prefix':>15}")
    for name, (same, prefix) in rows:
        print(f"{name:<34}{same:>15.4f}{prefix:>15.4f}")


if __name__ == "__main__":
    main()
