"""The ShareGPT workload: prompts with their token ids and reference output lengths."""
import json
import os
from dataclasses import dataclass

DEFAULT_WORKLOAD = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "workloads",
                                "sharegpt-1000.jsonl")


@dataclass
class Request:
    prompt: str
    prompt_token_ids: list[int]
    output_len: int


def load_workload(path: str = DEFAULT_WORKLOAD, num_prompts: int | None = None,
                  vocab_size: int | None = None) -> list[Request]:
    """The first `num_prompts` requests of a JSONL workload file (all when None).

    The token ids are the default model's (a 49152-token vocabulary). For a model with a smaller
    vocabulary (Llama-2's 32000) pass its `vocab_size`: ids beyond it are folded into it
    (id % vocab_size), which keeps every prompt's length, all a dummy-weight benchmark needs.
    """
    requests = []
    with open(path) as f:
        for line in f:
            if num_prompts is not None and len(requests) >= num_prompts:
                break
            row = json.loads(line)
            ids = row["prompt_token_ids"]
            if vocab_size is not None:
                ids = [t % vocab_size for t in ids]
            requests.append(Request(row["prompt"], ids, row["output_len"]))
    return requests


def preset_vocab_size(preset: str | None) -> int | None:
    """The vocabulary size of a dummy-weight preset (None for a real model)."""
    if preset is None:
        return None
    from inference_engine.transformers_utils.config import PRESETS
    return PRESETS[preset]["vocab_size"]
