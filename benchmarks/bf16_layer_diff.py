"""Where our engine's bfloat16 activations first differ from transformers': one prompt's prefill,
compared module by module, layer by layer (fraction of elements that differ, largest difference).

    OMP_NUM_THREADS=1 python benchmarks/bf16_layer_diff.py --prompt 1 --layers 3
    ... --torch-ops rotary_and_cache,silu_and_mul   # run these ops on their torch references
"""
import argparse
import os
import sys

import torch

# (our module, transformers' module, what is captured), per decoder layer. Our gate_up_proj and
# qkv_proj outputs are split to match transformers' separate projections.
_POINTS = [
    ("input_layernorm", "input_layernorm", "out"),
    ("self_attn.qkv_proj", "self_attn.q_proj", "q"),
    ("self_attn.qkv_proj", "self_attn.k_proj", "k"),
    ("self_attn.qkv_proj", "self_attn.v_proj", "v"),
    ("self_attn.o_proj", "self_attn.o_proj", "in"),
    ("self_attn.o_proj", "self_attn.o_proj", "out"),
    ("post_attention_layernorm", "post_attention_layernorm", "out"),
    ("mlp.gate_up_proj", "mlp.gate_proj", "gate"),
    ("mlp.gate_up_proj", "mlp.up_proj", "up"),
    ("mlp.down_proj", "mlp.down_proj", "in"),
    ("mlp.down_proj", "mlp.down_proj", "out"),
]


def _capture(model: torch.nn.Module, names: set[str], store: dict) -> list:
    """Forward hooks that keep each named module's first input and its output, flattened to 2-D,
    one pair per call."""
    def hook(name):
        def fn(module, args, out):
            out = out[0] if isinstance(out, tuple) else out
            store.setdefault(name, []).append((args[0].detach().reshape(-1, args[0].shape[-1]).clone(),
                                               out.detach().reshape(-1, out.shape[-1]).clone()))
        return fn
    return [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n in names]


def _pick(store: dict, name: str, what: str, sizes: dict | None) -> torch.Tensor:
    """The captured tensor; `sizes` (q and kv widths) is given for our fused projections."""
    inp, out = store[name][-1]
    if what == "in":
        return inp
    if sizes is None:
        return out
    if what in ("q", "k", "v"):
        q, kv = sizes["q"], sizes["kv"]
        return out.split([q, kv, kv], dim=-1)["qkv".index(what)]
    if what in ("gate", "up"):
        return out.chunk(2, dim=-1)[what == "up"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt", type=int, default=1, help="index into the ShareGPT workload")
    parser.add_argument("--max-prompt-len", type=int, default=512)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--torch-ops", default="")
    parser.add_argument("--decode", action="store_true", help="compare the first decode step")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
    from transformers import AutoModelForCausalLM

    from inference_engine import LLM, SamplingParams
    from utils.bf16_agreement import force_torch_ops, workload_prompts
    from utils.hf_checkpoint import embedded_hf_checkpoint
    force_torch_ops([n for n in args.torch_ops.split(",") if n])
    ids = workload_prompts(args.prompt + 1, args.max_prompt_len)[args.prompt]

    hf = AutoModelForCausalLM.from_pretrained(embedded_hf_checkpoint(), dtype=torch.bfloat16).eval()
    llm = LLM(dtype="bfloat16", max_model_len=2048, cpu_kv_cache_space_gib=0.25)
    ours = llm.llm_engine.executor.driver.model_runner.model
    layers = range(args.layers)
    theirs_store, ours_store = {}, {}
    hooks = _capture(hf.model, {f"layers.{i}.{p[1]}" for i in layers for p in _POINTS} | {"norm"},
                     theirs_store)
    hooks += _capture(ours.model, {f"layers.{i}.{p[0]}" for i in layers for p in _POINTS} | {"norm"},
                      ours_store)
    out = llm.generate(prompt_token_ids=[ids], use_tqdm=False,
                       sampling_params=SamplingParams(temperature=0, max_tokens=1 + args.decode))
    with torch.inference_mode():
        past = hf(torch.tensor([ids]), use_cache=True).past_key_values
        if args.decode:  # the token our engine chose, so that both decode the same input
            hf(torch.tensor([out[0].outputs[0].token_ids[:1]]), past_key_values=past)
    for h in hooks:
        h.remove()
    attn = ours.model.layers[0].self_attn
    sizes = {"q": attn.q_size, "kv": attn.kv_size}
    print(f"prompt {args.prompt}: {len(ids)} tokens" + (", first decode step" if args.decode else ""))
    print(f"{'layer':<6}{'point':<34}{'differ':>10}{'max |diff|':>12}")
    for i in layers:
        for ours_name, hf_name, what in _POINTS:
            a = _pick(ours_store, f"layers.{i}.{ours_name}", what, sizes).float()
            b = _pick(theirs_store, f"layers.{i}.{hf_name}", what, None).float()
            _report(str(i), f"{hf_name} {what}", a, b)
    _report("", "norm out", _pick(ours_store, "norm", "out", None).float(),
            _pick(theirs_store, "norm", "out", None).float())


def _report(layer: str, point: str, a: torch.Tensor, b: torch.Tensor) -> None:
    print(f"{layer:<6}{point:<34}{(a != b).float().mean().item():>10.5f}"
          f"{(a - b).abs().max().item():>12.4g}")


if __name__ == "__main__":
    main()
