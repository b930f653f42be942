"""Which format a model's weights are in: a folder of safetensors or (older checkpoints) of
PyTorch pickles, a GGUF file, or none (dummy weights), checked against what the user asked for
(`load_format`)."""
import glob
import os

from inference_engine.transformers_utils.config import PRESETS, check_model_path, is_gguf
from inference_engine.transformers_utils.embedded import model_or_default

LOAD_FORMATS = ("auto", "safetensors", "pt", "gguf", "dummy")


def resolve_load_format(model: str | None, load_format: str = "auto") -> str:
    """The concrete format ('safetensors', 'pt', 'gguf' or 'dummy') for `model`, checked against
    it; a folder with both safetensors and pickles is read from its safetensors."""
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
    found = [kind for kind, pattern in (("safetensors", "*.safetensors"),
                                        ("pt", "pytorch_model*.bin"))
             if glob.glob(os.path.join(model, pattern))]
    if load_format in found or (load_format == "auto" and found):
        return load_format if load_format != "auto" else found[0]
    wanted = {"auto": "*.safetensors or pytorch_model*.bin", "safetensors": "*.safetensors",
              "pt": "pytorch_model*.bin"}[load_format]
    raise FileNotFoundError(f"no {wanted} files in {model} (use load_format='dummy' for random "
                            "weights)")
