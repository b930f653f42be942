"""transformers as the correctness oracle."""
import torch


def hf_greedy(model, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | None) -> list[int]:
    """transformers' own greedy generate for one prompt, on the model's device.

    With eos_token_id None, EOS is ignored: exactly max_new_tokens tokens come back.
    """
    ids = torch.tensor([prompt_ids], device=model.device)
    extra = {"eos_token_id": eos_token_id} if eos_token_id is not None else {
        "min_new_tokens": max_new_tokens}
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0,
                             attention_mask=torch.ones_like(ids), **extra)
    return out[0, len(prompt_ids):].tolist()
