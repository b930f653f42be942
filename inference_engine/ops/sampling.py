"""Reference for greedy sampling: each row's most likely token and its log-probability."""
import torch


def greedy_sample_ref(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the first index of each row's largest logit [rows] int64, its log-softmax value [rows]
    float32)."""
    tokens = logits.argmax(dim=-1)
    logprobs = torch.log_softmax(logits.float(), dim=-1).gather(1, tokens[:, None])[:, 0]
    return tokens, logprobs
