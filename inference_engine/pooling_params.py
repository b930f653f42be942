"""Parameters of an embedding request (vLLM's PoolingParams), and the ways a prompt's final
hidden states (after the final norm) pool into its embedding (PoolingType)."""
import enum
import math
from dataclasses import dataclass

from inference_engine.errors import SamplingParamsError


class PoolingType(str, enum.Enum):
    """How a prompt's final hidden states become one embedding, set per model (EngineArgs
    `pooling_type`, else the checkpoint's sentence-transformers Pooling module, else LAST):
    the last token's (decoder embedding models: e5-mistral, gte-Qwen2, Qwen3-Embedding), the
    mean over every prompt token, or the first token's (BERT's [CLS])."""
    LAST = "LAST"
    MEAN = "MEAN"
    CLS = "CLS"

    @classmethod
    def parse(cls, value: "str | PoolingType") -> "PoolingType":
        """The type named `value`; a ValueError naming the choices for anything else."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"pooling_type must be one of {', '.join(t.value for t in cls)}, "
                             f"got {value!r}") from None

    def token_range(self, start: int, end: int, prompt_len: int) -> tuple[int, int]:
        """The prompt tokens of a chunk start..end-1 (all of the prompt, or a part of it that
        one step computes) that this pooling reads: possibly none (start == end)."""
        if self is PoolingType.MEAN:
            return start, end
        first = prompt_len - 1 if self is PoolingType.LAST else 0
        return (first, first + 1) if start <= first < end else (start, start)

    @property
    def reads_every_prompt_token(self) -> bool:
        """Whether it needs hidden states of prompt tokens before the last: such a prompt is
        computed whole, never taken from the prefix cache (whose tokens no step computes)."""
        return self is not PoolingType.LAST


@dataclass
class PoolingParams:
    """`normalize`: scaled to unit length; `dimensions`: only the first that many values (then
    normalized), for models trained to allow it (Matryoshka embeddings)."""
    normalize: bool = True
    dimensions: int | None = None

    def __post_init__(self) -> None:
        if self.dimensions is not None and self.dimensions < 1:
            raise SamplingParamsError("dimensions",
                                      f"dimensions must be at least 1, got {self.dimensions}")

    def finish(self, hidden: list[float]) -> list[float]:
        """The embedding of a pooled hidden state."""
        vector = hidden[:self.dimensions] if self.dimensions is not None else hidden
        if not self.normalize:
            return vector
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]
