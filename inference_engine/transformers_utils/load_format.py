"""Which format a model's weights are in: a safetensors folder, a GGUF file, or none (dummy
weights), checked against what the user asked for (`load_format`)."""
import glob
import os

from inference_engine.transformers_utils.config import PRESETS, check_model_path, is_gguf
from inference_engine.transformers_utils.embedded import model_or_default

LOAD_FORMATS = ("auto", "safetensors", "gguf", "dummy")


def resolve_load_format(model: str | None, load_format: str = "auto") -> str:
    """The concrete format ('safetensors', 'gguf' or 'dummy') for `model`, checked against it."""
    if load_format not in LOAD_FORMATS:
        raise ValueError(f"load_format must be one of {LOAD_FORMATS}, got {load_format!r}")
    model = model_or_default(model)
    if load_format == "dummy":
        return "dummy"
    if model in PRESETS:
        raise ValueError(f"preset {model!r} has no weights: use load_format='dummy'")
    check_model_path(model)
    if is_gguf(model):
        if load_format not in ("auto", "gguf"):
            raise ValueError(f"{model} is a GGUF file; load_format {load_format!r} cannot read it")
        return "gguf"
    if load_format == "gguf":
        raise ValueError(f"load_format 'gguf' needs a .gguf file, got the folder {model}")
    if not glob.glob(os.path.join(model, "*.safetensors")):
        raise FileNotFoundError(f"no *.safetensors files in {model} (only safetensors checkpoints "
                                "are supported; use load_format='dummy' for random weights)")
    return "safetensors"
