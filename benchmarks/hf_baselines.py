"""transformers baselines on the same requests: plain `generate`, and its continuous batching."""
import time

import torch

from workload import Request


def load_hf_model(model_path: str | None, preset: str | None, dtype: torch.dtype, device: str):
    """The same weights our engine runs: a HF folder, a GGUF file, or random preset shapes."""
    import os

    from transformers import AutoModelForCausalLM

    from inference_engine.transformers_utils.config import get_hf_config
    from inference_engine.transformers_utils.embedded import model_or_default
    if preset is not None:
        config = get_hf_config(preset)
        with torch.device(device):
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        return model.eval()
    path = model_or_default(model_path)
    if path.endswith(".gguf"):
        model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path),
                                                     gguf_file=os.path.basename(path), dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model.to(device).eval()


@torch.inference_mode()
def run_hf_generate(model, requests: list[Request], device: str) -> float:
    """One request at a time, each generating exactly its output_len tokens; returns seconds."""
    start = time.perf_counter()
    for i, req in enumerate(requests, 1):
        ids = torch.tensor([req.prompt_token_ids], device=device)
        model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                       max_new_tokens=req.output_len, min_new_tokens=req.output_len,
                       pad_token_id=0)
        if i % 10 == 0:  # a run cut short by a time limit still leaves a partial figure
            print(f"transformers generate: {i} requests in {time.perf_counter() - start:.1f} s",
                  flush=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run_hf_continuous_batching(model, requests: list[Request], device: str) -> float:
    """transformers' own continuous batching (`init_continuous_batching`), each request with
    its own max_new_tokens and EOS ignored; returns seconds.

    Not under inference_mode: the manager runs its loop in a thread of its own, which may not
    update tensors created in inference mode.
    """
    from transformers import GenerationConfig
    config = GenerationConfig(max_new_tokens=max(r.output_len for r in requests), do_sample=False,
                              eos_token_id=-1, pad_token_id=0)
    manager = model.init_continuous_batching(generation_config=config)
    manager.start()
    start = time.perf_counter()
    for i, req in enumerate(requests):
        manager.add_request(req.prompt_token_ids, request_id=f"r{i}", max_new_tokens=req.output_len,
                            eos_token_id=-1)
    done = 0
    while done < len(requests):
        result = manager.get_result(timeout=600)
        if result is None:
            raise RuntimeError(f"transformers' continuous batching stopped after {done} requests")
        if result.is_finished():
            done += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    manager.stop(block=True)
    return elapsed
