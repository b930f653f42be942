"""Checkpoints whose tokenizer is a sentencepiece model alone (`tokenizer.model`, no
`tokenizer.json`), as older Llama, Mistral and T5-era checkpoints ship: transformers converts
it on load, and prompts, outputs and streams follow sentencepiece's own encoding."""
import io
import json
import os

import pytest
import sentencepiece as spm

from inference_engine import LLM, SamplingParams
from inference_engine.transformers_utils.tokenizer import get_tokenizer
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint
from utils.hub_standin import StandInHub

CORPUS = ["The quick brown fox jumps over the lazy dog.", "Hello, my name is Ada; I write code.",
          "Ünïcödé, 中文 and emoji text", "numbers 1 2 3 42 and more words to learn from"]
TEXT = "Hello, my name is Ünïcödé 中文 fox 42 ☃"  # the snowman is not in the corpus: bytes


@pytest.fixture(scope="module")
def sentencepiece_model() -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 50), model_writer=model, vocab_size=400,
        model_type="bpe", byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1,
        eos_id=2, pad_id=-1, minloglevel=2)
    return model.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, sentencepiece_model) -> str:
    path = write_hf_checkpoint(tmp_path_factory.mktemp("sp"), tiny_llama_config(vocab_size=400),
                               seed=4, tokenizer=False)
    with open(os.path.join(path, "tokenizer.model"), "wb") as f:
        f.write(sentencepiece_model)
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "add_bos_token": True}, f)
    return path


def test_encodes_and_decodes_as_sentencepiece(checkpoint, sentencepiece_model):
    sp = spm.SentencePieceProcessor(model_proto=sentencepiece_model)
    tokenizer = get_tokenizer(checkpoint)
    assert "tokenizer.json" not in os.listdir(checkpoint)
    assert tokenizer.encode(TEXT) == [1] + sp.encode(TEXT)
    assert tokenizer.decode(sp.encode(TEXT)) == sp.decode(sp.encode(TEXT)) == TEXT


def test_generates_and_streams_text_through_it(checkpoint):
    llm = LLM(checkpoint, dtype="float32", max_model_len=128, cpu_kv_cache_space_gib=0.05)
    tokenizer = llm.get_tokenizer()
    # Pieces only, no byte tokens: a random model's bytes are rarely UTF-8, and a run of them
    # decodes to replacement characters as a whole but not as a stream.
    pieces = [i for i in range(len(tokenizer)) if not tokenizer.convert_ids_to_tokens(i)
              .startswith("<")]
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True,
                            allowed_token_ids=pieces)
    out = llm.generate([TEXT], params, use_tqdm=False)[0]
    assert out.prompt_token_ids == tokenizer.encode(TEXT)
    completion = out.outputs[0]
    assert completion.text == tokenizer.decode(completion.token_ids)
    assert " " in completion.text and "\u2581" not in completion.text  # word starts as spaces
    llm.shutdown()


def test_the_hub_brings_the_sentencepiece_model_along(checkpoint, tmp_path, monkeypatch):
    from huggingface_hub import constants
    from inference_engine.transformers_utils.hub import download_model
    hub = StandInHub()
    hub.add_folder("org/sp", checkpoint)
    hub.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # (tests/conftest.py sets it)
    try:
        folder = download_model("org/sp", download_dir=str(tmp_path))
    finally:
        hub.stop()
    assert {"tokenizer.model", "tokenizer_config.json"} <= set(os.listdir(folder))
    assert get_tokenizer(folder).encode(TEXT) == get_tokenizer(checkpoint).encode(TEXT)
