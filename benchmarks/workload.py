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


def load_workload(path: str = DEFAULT_WORKLOAD, num_prompts: int | None = None) -> list[Request]:
    """The first `num_prompts` requests of a JSONL workload file (all when None)."""
    requests = []
    with open(path) as f:
        for line in f:
            if num_prompts is not None and len(requests) >= num_prompts:
                break
            row = json.loads(line)
            requests.append(Request(row["prompt"], row["prompt_token_ids"], row["output_len"]))
    return requests
