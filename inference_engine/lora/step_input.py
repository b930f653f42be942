"""A step's adapters, laid out as the model runner lays out its tokens (the prefills' chunks,
then the decoding sequences' tokens and drafts): what every rank needs to build the LoRA mask."""
import numpy as np
import torch

from inference_engine.lora.request import LoRARequest
from inference_engine.sequence import SequenceStatus


def step_loras(sched) -> tuple[dict[int, LoRARequest] | None, torch.Tensor | None]:
    """({adapter id: request}, each token's adapter id [num_tokens] int32, 0 for the base
    model), or (None, None) for a step without adapters."""
    requests = {g.lora_int_id: g.lora_request for g in sched.scheduled_seq_groups
                if g.lora_int_id}
    if not requests:
        return None, None
    ids, counts = [], []
    for group in sched.prefill_seq_groups:
        for seq in group.get_seqs(SequenceStatus.RUNNING):
            start, end = sched.prefill_chunks[seq.seq_id]
            ids.append(group.lora_int_id)
            counts.append(end - start)
    for group, _, drafts in sched.decode_rows():  # a token each, and its drafts
        ids.append(group.lora_int_id)
        counts.append(1 + len(drafts))
    return requests, torch.from_numpy(np.repeat(np.asarray(ids, np.int32), counts))
