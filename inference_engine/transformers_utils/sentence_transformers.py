"""The pooling a sentence-transformers checkpoint asks for: its `modules.json` lists the modules
that follow the transformer; a `Pooling` module's folder (`1_Pooling/config.json`) says how the
token states become one embedding. A `Normalize` module needs nothing here: embeddings are
normalized by default (PoolingParams.normalize), as sentence-transformers' would be."""
import json
import logging
import os

from inference_engine.pooling_params import PoolingType

logger = logging.getLogger(__name__)

POOLING_MODULE = "sentence_transformers.models.Pooling"
# Pooling config fields -> our type; the other modes (max, mean_sqrt_len, weightedmean) are not
# implemented.
_MODES = {"pooling_mode_lasttoken": PoolingType.LAST, "pooling_mode_mean_tokens": PoolingType.MEAN,
          "pooling_mode_cls_token": PoolingType.CLS}
# Modules after pooling that change the vector: embeddings would differ from the library's.
_UNSUPPORTED_MODULES = ("sentence_transformers.models.Dense",)


def sentence_transformers_pooling(folder: str) -> PoolingType | None:
    """The PoolingType of the checkpoint folder's sentence-transformers Pooling module; None
    when it has none (no `modules.json`, or no Pooling module in it). A ValueError when the
    module asks for a pooling we do not have."""
    modules_file = os.path.join(folder, "modules.json")
    if not os.path.isfile(modules_file):
        return None
    with open(modules_file) as f:
        modules = json.load(f)
    for module in modules:
        if module.get("type") in _UNSUPPORTED_MODULES:
            logger.warning("%s: sentence-transformers module %s (%s) is not applied: embeddings "
                           "are the pooled hidden states without it", folder, module.get("path"),
                           module["type"])
    pooling = [m for m in modules if m.get("type") == POOLING_MODULE]
    if not pooling:
        return None
    config_file = os.path.join(folder, pooling[0].get("path", ""), "config.json")
    with open(config_file) as f:
        config = json.load(f)
    asked = sorted(key for key, value in config.items()
                   if key.startswith("pooling_mode_") and value)
    if len(asked) != 1 or asked[0] not in _MODES:
        raise ValueError(f"{config_file} asks for pooling {asked or 'none'}; supported: exactly "
                         f"one of {', '.join(_MODES)} (or set pooling_type: "
                         f"{', '.join(t.value for t in PoolingType)})")
    return _MODES[asked[0]]
