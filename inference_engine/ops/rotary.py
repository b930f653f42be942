"""Rotary position embedding: plain-PyTorch reference."""
import torch


def rotary_embedding_ref(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                         head_size: int, cos_sin_cache: torch.Tensor,
                         is_neox: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotates query [T, Hq * head_size] and key [T, Hk * head_size] by their positions [T].

    cos_sin_cache is [max_position, rot_dim] holding cos in its first half and sin in its second.
    NeoX style rotates the two halves of each head; GPT-J style rotates interleaved pairs.
    Returns new tensors of the input shapes.
    """
    cos, sin = cos_sin_cache[positions].chunk(2, dim=-1)  # [T, rot_dim // 2] each
    rot_dim = cos_sin_cache.shape[-1]

    def rotate(x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.view(shape[0], -1, head_size)
        x_rot, x_pass = x[..., :rot_dim], x[..., rot_dim:]
        c, s = cos.unsqueeze(1).to(x.dtype), sin.unsqueeze(1).to(x.dtype)
        if is_neox:
            x1, x2 = x_rot.chunk(2, dim=-1)
            c, s = torch.cat((c, c), dim=-1), torch.cat((s, s), dim=-1)
            x_rot = x_rot * c + torch.cat((-x2, x1), dim=-1) * s
        else:
            x1, x2 = x_rot[..., 0::2], x_rot[..., 1::2]
            x_rot = torch.stack((x1 * c - x2 * s, x2 * c + x1 * s), dim=-1).flatten(-2)
        return torch.cat((x_rot, x_pass), dim=-1).reshape(shape)

    return rotate(query), rotate(key)


def rotary_and_cache_ref(positions: torch.Tensor, query: torch.Tensor, key: torch.Tensor,
                         value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                         slot_mapping: torch.Tensor, head_size: int, cos_sin_cache: torch.Tensor,
                         is_neox: bool) -> torch.Tensor:
    """Rotates query and key as rotary_embedding_ref does, stores the rotated keys and the values
    [T, num_kv_heads * head_size] in the paged cache as reshape_and_cache_ref does (negative
    slots: not stored), and returns the rotated query."""
    from inference_engine.ops.attention import reshape_and_cache_ref
    query, key = rotary_embedding_ref(positions, query, key, head_size, cos_sin_cache, is_neox)
    rows = (key.shape[0], -1, head_size)
    reshape_and_cache_ref(key.view(rows), value.view(rows), key_cache, value_cache, slot_mapping)
    return query
