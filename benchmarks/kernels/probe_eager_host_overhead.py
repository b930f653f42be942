"""How long does the host take to launch an eager (mixed prefill + decode) step's pieces? Times the
host side only (perf_counter around the call, no synchronisation, the GPU kept busy so nothing
waits for it) of: a Llama-3-8B linear layer when the token count repeats and when it changes on
every call (as it does from one mixed step to the next), the Triton prefill attention op, the
same launch as it was before CompiledLaunch and the per-step tile starts (through the JIT, tile
starts computed per call), and one small torch op for scale.

    python benchmarks/kernels/probe_eager_host_overhead.py
"""
import random
import statistics
import time

import torch
import torch.nn.functional as F
import triton

from inference_engine.ops import triton_prefill_attention as tpa

device = torch.device("cuda")
dtype = torch.bfloat16
HIDDEN, QKV, GATE_UP = 4096, 6144, 28672
weights = {"qkv_proj": torch.randn(QKV, HIDDEN, device=device, dtype=dtype),
           "gate_up_proj": torch.randn(GATE_UP, HIDDEN, device=device, dtype=dtype)}
MAX_TOKENS = 1024
x_full = torch.randn(MAX_TOKENS, HIDDEN, device=device, dtype=dtype)


def host_us(fn, calls: int = 200) -> float:
    """Median host time of one call, the GPU kept busy so that no launch waits for it."""
    times = []
    for _ in range(calls):
        torch.cuda._sleep(1_000_000)  # ~0.5 ms of GPU work ahead of every call
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if len(times) % 50 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return statistics.median(times) * 1e6


def linear_rows(name: str, same: bool) -> float:
    rng = random.Random(0)
    w = weights[name]

    def call():
        m = 300 if same else rng.randrange(200, MAX_TOKENS)
        F.linear(x_full[:m], w)
    return host_us(call)


def prefill_attention_call(through_jit: bool = False) -> float:
    num_blocks, block_size, kv_heads, head_size = 4096, 16, 8, 128
    k_cache = torch.randn(num_blocks, block_size, kv_heads, head_size, device=device, dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    q_lens = [250, 40]
    starts = torch.tensor([0, 250, 290], dtype=torch.int32, device=device)
    seq_lens = torch.tensor([250, 400], dtype=torch.int32, device=device)
    tables = torch.randint(0, num_blocks, (2, 64), dtype=torch.int32, device=device)
    q = torch.randn(sum(q_lens), 32, head_size, device=device, dtype=dtype)
    if not through_jit:
        return host_us(lambda: tpa.prefill_attention(q, k_cache, v_cache, tables, starts,
                                                     seq_lens, head_size ** -0.5))

    def before():  # the launch as it was: tile starts per call, the JIT's own entry
        out = torch.empty_like(q)
        lens = starts[1:] - starts[:-1]
        tile_starts = torch.zeros(3, dtype=torch.int32, device=device)
        tile_starts[1:] = torch.cumsum((lens + tpa.BLOCK_M - 1) // tpa.BLOCK_M, 0)
        grid = (triton.cdiv(q.shape[0], tpa.BLOCK_M) + 2, 32)
        tpa._prefill_kernel[grid](
            q, k_cache, v_cache, out, tables, starts, seq_lens, tile_starts, seq_lens,
            head_size ** -0.5, 2, 4, q.stride(0), q.stride(1), out.stride(0), out.stride(1),
            k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), tables.stride(0),
            HEAD_SIZE=head_size, HEAD_PAD=head_size, BLOCK_SIZE=block_size, BLOCK_M=tpa.BLOCK_M,
            BLOCK_N=tpa.BLOCK_N, HAS_ALIBI=False, IEEE_DOT=False)
    return host_us(before)


def main() -> None:
    for _ in range(3):  # compile and warm everything first
        linear_rows("qkv_proj", True), prefill_attention_call(), prefill_attention_call(True)
    rows = [(f"linear {name}, same token count", linear_rows(name, True))
            for name in weights]
    rows += [(f"linear {name}, new token count per call", linear_rows(name, False))
             for name in weights]
    rows.append(("prefill attention op (290 tokens, 2 seqs)", prefill_attention_call()))
    rows.append(("  before: JIT entry, tile starts per call", prefill_attention_call(True)))
    a = x_full[:300]
    rows.append(("torch.add (300 x 4096)", host_us(lambda: a + a)))
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"{'host time per call':52}{'µs':>8}")
    for name, us in rows:
        print(f"{name:52}{us:8.1f}")


if __name__ == "__main__":
    main()
