"""Where a model's embedding pooling comes from: the engine option (`pooling_type`,
`--pooling-type`), else a sentence-transformers checkpoint's Pooling module (modules.json and
1_Pooling/config.json), else LAST; unsupported or unknown poolings are clear errors."""
import argparse
import json
import logging

import pytest

from inference_engine.config import ModelConfig
from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.pooling_params import PoolingType
from inference_engine.transformers_utils.sentence_transformers import (
    sentence_transformers_pooling)
from utils.hf_checkpoint import tiny_llama_config, write_sentence_transformers_pooling


def model_config(folder, pooling_type=None) -> ModelConfig:
    """The config of a checkpoint folder without weights (dummy ones would be made)."""
    return ModelConfig(model=str(folder), hf_config=tiny_llama_config(), load_format="dummy",
                       device="cpu", pooling_type=pooling_type)


@pytest.mark.parametrize("mode, expected", [("pooling_mode_mean_tokens", PoolingType.MEAN),
                                            ("pooling_mode_cls_token", PoolingType.CLS),
                                            ("pooling_mode_lasttoken", PoolingType.LAST)])
def test_the_checkpoint_pooling_module_sets_the_type(tmp_path, mode, expected):
    write_sentence_transformers_pooling(tmp_path, **{mode: True})
    assert sentence_transformers_pooling(str(tmp_path)) is expected
    assert model_config(tmp_path).pooling_type is expected


def test_the_option_wins_and_the_default_is_last(tmp_path):
    assert model_config(tmp_path).pooling_type is PoolingType.LAST  # no modules.json
    write_sentence_transformers_pooling(tmp_path, pooling_mode_mean_tokens=True)
    assert model_config(tmp_path, "CLS").pooling_type is PoolingType.CLS
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]))
    assert sentence_transformers_pooling(str(tmp_path)) is None


@pytest.mark.parametrize("modes", [{"pooling_mode_max_tokens": True},
                                   {"pooling_mode_mean_tokens": True,
                                    "pooling_mode_cls_token": True}, {}])
def test_unsupported_checkpoint_poolings_are_refused(tmp_path, modes):
    write_sentence_transformers_pooling(tmp_path, **modes)
    with pytest.raises(ValueError, match="1_Pooling/config.json asks for pooling .* supported: "
                                         "exactly one of pooling_mode_lasttoken"):
        model_config(tmp_path)
    assert model_config(tmp_path, "MEAN").pooling_type is PoolingType.MEAN  # the way out


def test_a_dense_module_is_not_applied_and_says_so(tmp_path, caplog):
    write_sentence_transformers_pooling(tmp_path, pooling_mode_mean_tokens=True)
    modules = json.loads((tmp_path / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense",
                    "type": "sentence_transformers.models.Dense"})
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with caplog.at_level(logging.WARNING):
        assert sentence_transformers_pooling(str(tmp_path)) is PoolingType.MEAN
    assert "3_Dense" in caplog.text and "not applied" in caplog.text


def test_bad_names_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="pooling_type must be one of LAST, MEAN, CLS, got 'max'"):
        model_config(tmp_path, "max")
    parser = EngineArgs.add_cli_args(argparse.ArgumentParser())
    assert EngineArgs.from_cli_args(parser.parse_args(["--pooling-type", "MEAN"])).pooling_type \
        == "MEAN"
    assert EngineArgs.from_cli_args(parser.parse_args([])).pooling_type is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--pooling-type", "mean"])
    assert "--pooling-type: invalid choice: 'mean'" in capsys.readouterr().err
