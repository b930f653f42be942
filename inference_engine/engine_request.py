"""One request as the engine takes it: built once by whoever asks (the offline LLM, a server
endpoint, beam search), checked once by the engine (engine/request_checks.py), then passed on
unchanged to the scheduler."""
import time
from dataclasses import dataclass, field

from inference_engine.lora.request import LoRARequest
from inference_engine.outputs import RequestOutputKind
from inference_engine.pooling_params import PoolingParams
from inference_engine.sampling_params import SamplingParams


@dataclass(slots=True)
class EngineRequest:
    """A generation, or with PoolingParams an embedding of the prompt. `prompt_token_ids` may be
    left to the checks to tokenize from `prompt`. `priority` (lower first) needs the priority
    scheduling policy; with prefix caching, only requests of the same adapter and `cache_salt`
    share cached blocks. `output_kind`: what each of its outputs carries."""
    request_id: str
    prompt: str | None
    params: SamplingParams | PoolingParams
    prompt_token_ids: list[int] | None = None
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    priority: int = 0
    lora_request: LoRARequest | None = None
    cache_salt: str | None = None
    arrival_time: float = field(default_factory=time.time)
    prompt_field: str = "prompt"  # what the caller calls the prompt, for errors to name it
    # Set by the checks: they passed, and the compiled structured-output constraint, if any.
    checked: bool = False
    grammar: object | None = None
