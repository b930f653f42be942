"""transformers as the correctness oracle."""
import torch


def hf_greedy(model, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | None) -> list[int]:
    """transformers' own greedy generate for one prompt."""
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=eos_token_id, pad_token_id=0,
                             attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.int64))
    return out[0, len(prompt_ids):].tolist()
