"""Parameters of an embedding request (vLLM's PoolingParams): the prompt's last hidden state,
after the final norm, is the embedding (last-token pooling, as decoder embedding models use)."""
import math
from dataclasses import dataclass

from inference_engine.sampling_params import SamplingParamsError


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
        """The embedding of a last hidden state."""
        vector = hidden[:self.dimensions] if self.dimensions is not None else hidden
        if not self.normalize:
            return vector
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]
