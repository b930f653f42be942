"""Automatic prefix caching: full KV-cache blocks found again by the tokens they hold.

A full block's key is a digest of its tokens and of the key of the block before it, so equal
keys mean equal prefixes: the whole chain up to and including the block, not just the block.
When its last holder frees a keyed block, the block keeps its keys and values and waits, least
recently freed first, until an allocation finds no unused block; a later prompt that starts with
the same tokens takes it back instead of computing them again (vLLM's `--enable-prefix-caching`).

The digest is BLAKE2b (128 bits), not Python's hash: a server's requests come from many users,
and a key that another prompt could be made to collide with would hand one user's cached prefix
to another.
"""
import hashlib
from collections import OrderedDict

import numpy as np


def block_keys(token_ids: list[int], block_size: int, num_blocks: int,
               known: list[bytes] | None = None, salt: bytes = b"") -> list[bytes]:
    """Keys of the first `num_blocks` full blocks of `token_ids`, each chained to the one before
    (the first to `salt`).

    `known` holds keys computed before for the same tokens (a sequence's tokens only grow, so
    they stay right); it is extended in place, and only the missing keys are computed."""
    keys = [] if known is None else known
    start = len(keys)
    tokens = np.asarray(token_ids[start * block_size:num_blocks * block_size], dtype=np.int64)
    key = keys[-1] if keys else salt
    for i in range(num_blocks - start):
        key = hashlib.blake2b(key + tokens[i * block_size:(i + 1) * block_size].tobytes(),
                              digest_size=16).digest()
        keys.append(key)
    return keys[:num_blocks]


class CachedBlocks:
    """Which physical blocks hold which keyed prefix, and which of them no sequence holds (those
    are free to take back, or to evict for a new allocation, least recently freed first)."""

    def __init__(self):
        self.block_of: dict[bytes, int] = {}
        self.key_of: dict[int, bytes] = {}
        self.unused: OrderedDict[int, None] = OrderedDict()

    def register(self, block: int, key: bytes) -> None:
        """Records that `block` (full, held) holds the prefix `key`, unless another already does."""
        if key not in self.block_of and block not in self.key_of:
            self.block_of[key] = block
            self.key_of[block] = key

    def lookup(self, key: bytes) -> int | None:
        return self.block_of.get(key)

    def evict_oldest(self) -> int | None:
        """The least recently freed unused block, its key forgotten; None if there is none."""
        if not self.unused:
            return None
        block, _ = self.unused.popitem(last=False)
        del self.block_of[self.key_of.pop(block)]
        return block

    def clear(self) -> list[int]:
        """Forgets every key; returns the unused blocks, which are plain free blocks again."""
        blocks = list(self.unused)
        self.block_of.clear()
        self.key_of.clear()
        self.unused.clear()
        return blocks
