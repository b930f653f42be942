"""A lean reader for the GGUF container: metadata, tensor directory and raw tensor bytes.

`gguf.GGUFReader` builds a numpy memmap view for every part of every field; on a file with a
49k-entry vocabulary that takes about 4 s. Parsing the header with `struct` takes a tenth of a
second, so config, tokenizer and weights can each read the file without caching a reader. The
format's enums and block sizes come from the `gguf` package.

Layout (little-endian, version 2 or 3): magic "GGUF", version u32, tensor count u64, metadata
count u64; then metadata (key string, value type u32, value); then tensor infos (name string,
n_dims u32, dims u64 * n_dims innermost first, ggml type u32, offset u64); then, aligned to
`general.alignment`, the tensor data. A string is a u64 length and UTF-8 bytes.
"""
import hashlib
import mmap
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

_MAGIC = b"GGUF"
_DEFAULT_ALIGNMENT = 32
_SCALARS = {  # value type -> struct code
    GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h", GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?", GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d",
}


@dataclass(frozen=True, slots=True)
class GGUFTensorInfo:
    """One tensor of the file. `shape` is in PyTorch order (outermost first)."""
    name: str
    shape: tuple[int, ...]
    type_id: int
    offset: int  # absolute position of the first byte in the file

    @property
    def qtype(self) -> GGMLQuantizationType:
        try:
            return GGMLQuantizationType(self.type_id)
        except ValueError:
            raise ValueError(f"GGUF tensor {self.name!r} has unknown ggml type id {self.type_id}") from None

    @property
    def nbytes(self) -> int:
        block_size, type_size = GGML_QUANT_SIZES[self.qtype]
        return int(np.prod(self.shape, dtype=np.int64)) // block_size * type_size


class GGUFFile:
    """Parses a GGUF file's header on construction; tensor bytes are mapped, not read."""

    def __init__(self, path: str):
        self.path = path
        with open(path, "rb") as f:
            # A private (copy-on-write) mapping is writable, so torch.frombuffer can view it
            # without copying and without its read-only warning; the file is never changed.
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        self._pos = 0
        if self._map[:4] != _MAGIC:
            raise ValueError(f"{path} is not a GGUF file (bad magic {bytes(self._map[:4])!r})")
        self._pos = 4
        version = self._scalar("I")
        if version not in (2, 3):
            raise ValueError(f"{path}: unsupported GGUF version {version} (2 and 3 are supported; "
                             "big-endian files are not)")
        n_tensors, n_kv = self._scalar("Q"), self._scalar("Q")
        self.metadata: dict[str, Any] = {}
        self._spans: dict[str, tuple[int, int]] = {}  # key -> bytes of its entry in the file
        for _ in range(n_kv):
            start = self._pos
            key = self._string()
            self.metadata[key] = self._value(self._scalar("I"))
            self._spans[key] = (start, self._pos)
        infos = []
        for _ in range(n_tensors):
            name = self._string()
            dims = struct.unpack_from(f"<{self._scalar('I')}Q", self._map, self._pos)
            self._pos += 8 * len(dims)
            infos.append((name, tuple(reversed(dims)), self._scalar("I"), self._scalar("Q")))
        alignment = int(self.metadata.get("general.alignment", _DEFAULT_ALIGNMENT))
        data_start = -(-self._pos // alignment) * alignment
        self.tensors: dict[str, GGUFTensorInfo] = {
            name: GGUFTensorInfo(name, shape, type_id, data_start + offset)
            for name, shape, type_id, offset in infos}

    @property
    def architecture(self) -> str:
        return self.metadata.get("general.architecture", "")

    def digest(self, prefix: str) -> str:
        """SHA-256 of the architecture and of the metadata entries whose keys start with
        `prefix`, as stored, in key order: e.g. a key for what was derived from the tokenizer
        fields alone, shared by every file that carries the same vocabulary."""
        h = hashlib.sha256(self.architecture.encode())
        for key, (start, end) in sorted(self._spans.items()):
            if key.startswith(prefix):
                h.update(self._map[start:end])
        return h.hexdigest()

    def raw(self, info: GGUFTensorInfo) -> torch.Tensor:
        """The tensor's bytes as a 1-D uint8 view of the mapped file."""
        end = info.offset + info.nbytes
        if end > len(self._map):
            raise ValueError(f"{self.path} is truncated: tensor {info.name!r} ends at byte {end}, "
                             f"the file has {len(self._map)}")
        return torch.frombuffer(self._map, dtype=torch.uint8, count=info.nbytes, offset=info.offset)

    def _scalar(self, code: str):
        (value,) = struct.unpack_from("<" + code, self._map, self._pos)
        self._pos += struct.calcsize(code)
        return value

    def _string(self) -> str:
        length = self._scalar("Q")
        start, self._pos = self._pos, self._pos + length
        return self._map[start:self._pos].decode("utf-8", errors="replace")

    def _value(self, vtype: int) -> Any:
        if vtype == GGUFValueType.STRING:
            return self._string()
        if vtype == GGUFValueType.ARRAY:
            etype, count = self._scalar("I"), self._scalar("Q")
            if etype in (GGUFValueType.STRING, GGUFValueType.ARRAY):
                return [self._value(etype) for _ in range(count)]
            code = _SCALARS[GGUFValueType(etype)]
            values = list(struct.unpack_from(f"<{count}{code}", self._map, self._pos))
            self._pos += count * struct.calcsize(code)
            return values
        return self._scalar(_SCALARS[GGUFValueType(vtype)])
