"""Weight quantization: one module per method, this registry, and the context through which a
model's linear layers get their method while the model is built (base.py says what a method
provides). The method comes from the checkpoint's `quantization_config` or from
`--quantization` (vLLM's flag): resolve_quantization picks it, config.QUANTIZATION_METHODS lists
the names for the CLI."""
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from inference_engine.model_executor.layers.quantization.awq import AWQConfig
from inference_engine.model_executor.layers.quantization.base import (LinearMethod,
                                                                      QuantizationConfig)
from inference_engine.model_executor.layers.quantization.compressed_tensors import (
    CompressedTensorsConfig)
from inference_engine.model_executor.layers.quantization.fp8_checkpoint import Fp8Config
from inference_engine.model_executor.layers.quantization.gptq import GPTQConfig
from inference_engine.model_executor.layers.quantization.squeezellm import SqueezeLLMConfig
from inference_engine.model_executor.layers.quantization.unquantized import UnquantizedLinearMethod

QUANTIZATION_CONFIGS: dict[str, type[QuantizationConfig]] = {
    c.name: c for c in (AWQConfig, CompressedTensorsConfig, Fp8Config, GPTQConfig,
                        SqueezeLLMConfig)}

# vLLM's --quantization names for GPTQ and AWQ checkpoints on its Marlin kernels: the same
# checkpoints, which run on our W4A16 kernels here.
QUANTIZATION_ALIASES = {"gptq_marlin": "gptq", "awq_marlin": "awq"}

_building: QuantizationConfig | None = None


def _stored(hf_config) -> dict | None:
    found = getattr(hf_config, "quantization_config", None)
    return found if found is None or isinstance(found, dict) else found.to_dict()


def resolve_quantization(hf_config, requested: str | None) -> str | None:
    """The method that runs the checkpoint: the one its `quantization_config` names, or
    `requested` (--quantization) where the two agree; ValueError saying why none fits."""
    supported = ", ".join(QUANTIZATION_CONFIGS)
    requested = QUANTIZATION_ALIASES.get(requested, requested)
    stored = _stored(hf_config)
    stored_method = None if stored is None else str(stored.get("quant_method", "?")).lower()
    if requested is not None and requested not in QUANTIZATION_CONFIGS:
        raise ValueError(f"quantization {requested!r} is not supported (supported: {supported})")
    if stored_method is not None and stored_method not in QUANTIZATION_CONFIGS:
        raise ValueError(f"the checkpoint is quantized with {stored_method!r}, which is not "
                         f"supported yet (supported: {supported})")
    if requested is not None and stored_method not in (None, requested):
        raise ValueError(f"--quantization {requested} does not apply to a checkpoint "
                         f"quantized with {stored_method}")
    method = requested or stored_method
    get_quantization_config(method, hf_config)  # its settings, checked now
    return method


def get_quantization_config(method: str | None, hf_config) -> QuantizationConfig | None:
    """The settings of `method` (as resolve_quantization returned it), from the checkpoint's
    `quantization_config` when it has one."""
    if method is None:
        return None
    return QUANTIZATION_CONFIGS[method].from_config(_stored(hf_config) or {})


@contextmanager
def building_with(config: QuantizationConfig | None) -> Iterator[None]:
    """While a model is built, its linear layers take their methods from `config`."""
    global _building
    previous, _building = _building, config
    try:
        yield
    finally:
        _building = previous


def linear_method_for(layer: nn.Module, quantize: bool = True) -> LinearMethod:
    """The method a linear layer built now uses: the model's quantization's, unless the layer
    asks to stay unquantized (a mixture of experts' router: small, and it picks the experts)."""
    if _building is None or not quantize:
        return UnquantizedLinearMethod()
    return _building.linear_method(layer)
