"""A checkpoint's generation_config.json as the default sampling values, as vLLM uses it
(`--generation-config auto`, the default): a request that leaves temperature, top_p, top_k, min_p
or repetition_penalty unset gets the model authors' value, and one without max_tokens at most
their max_new_tokens. `vllm` (or `none`) ignores the file, a folder reads it from there;
`--override-generation-config '{"temperature": 0.5}'` wins over both. Values a request sets
always win."""
import json
import logging
import os
import warnings

from inference_engine.sampling_params import SamplingParams

logger = logging.getLogger(__name__)

SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_tokens")
IGNORE_FILE = ("vllm", "none")
FILE_NAME = "generation_config.json"


def default_sampling_values(model: str, source: str = "auto",
                            overrides: dict | str | None = None) -> dict:
    """The sampling values that requests default to (names as in SamplingParams)."""
    values = {}
    folder = None if source in IGNORE_FILE else (model if source == "auto" else source)
    if folder is not None and os.path.isfile(os.path.join(folder, FILE_NAME)):
        values = _read(folder)
    elif source not in ("auto", *IGNORE_FILE):
        raise ValueError(f"generation_config: no {FILE_NAME} in {source!r} (give a folder that "
                         f"has one, 'auto' for the model's own or 'vllm' for none)")
    values.update(_overrides(overrides))
    SamplingParams(**values)  # a value out of range fails now, not in every request
    if values:
        logger.info("default sampling values from the generation config: %s", values)
    return values


def _read(folder: str) -> dict:
    from transformers import GenerationConfig
    with warnings.catch_warnings():  # e.g. a temperature without do_sample: still the default
        warnings.simplefilter("ignore")
        written = GenerationConfig.from_pretrained(folder).to_diff_dict()
    if written.get("max_new_tokens") is not None:
        written["max_tokens"] = written["max_new_tokens"]
    return {k: written[k] for k in SAMPLING_FIELDS if written.get(k) is not None}


def _overrides(overrides: dict | str | None) -> dict:
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except json.JSONDecodeError as exc:
            raise ValueError(f"override_generation_config is not JSON: {exc}") from exc
    overrides = dict(overrides or {})
    if "max_new_tokens" in overrides:
        overrides["max_tokens"] = overrides.pop("max_new_tokens")
    unknown = set(overrides) - set(SAMPLING_FIELDS)
    if unknown:
        raise ValueError(f"override_generation_config: unknown field(s) {sorted(unknown)}; "
                         f"known: {', '.join(SAMPLING_FIELDS)}")
    return overrides
