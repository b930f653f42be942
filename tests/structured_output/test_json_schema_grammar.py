"""JSON schemas compiled for structured outputs: every string the grammar admits is one a strict
JSON parser takes (no raw control characters, also in strings of bounded length, where
xgrammar's own conversion lets them in), and a bad schema is the request's error."""
import json

import pytest
from transformers import AutoTokenizer

from inference_engine.errors import SamplingParamsError
from inference_engine.structured_output.backend import GrammarBackend
from inference_engine.sampling_params import StructuredOutputsParams
from utils.byte_tokenizer import write_byte_tokenizer

pytest.importorskip("xgrammar")
SCHEMA = {"type": "object", "properties": {"tag": {"type": "string", "maxLength": 6},
                                           "name": {"type": "string"}},
          "required": ["tag", "name"], "additionalProperties": False}


@pytest.fixture(scope="module")
def backend_and_tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("bytes")
    write_byte_tokenizer(path, eos_token_id=2)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return GrammarBackend(tokenizer, vocab_size=len(tokenizer)), tokenizer


def accepts(backend_and_tokenizer, schema, text: str) -> bool:
    backend, tokenizer = backend_and_tokenizer
    matcher = backend.matcher(backend.compile(StructuredOutputsParams(json=schema)), [2])
    ids = tokenizer.encode(text, add_special_tokens=False)
    return all(matcher.accept_token(t) for t in ids) and matcher.accept_token(2)


@pytest.mark.parametrize("text,valid", [
    ('{"tag": "ab c", "name": "x"}', True),
    ('{"tag": "", "name": "é\\n"}', True),
    ('{"tag": "a\x14", "name": "x"}', False),  # raw control character in a bounded string
    ('{"tag": "a\tb", "name": "x"}', False),
    ('{"tag": "a", "name": "x\x01"}', False),  # and in an unbounded one
    ('{"tag": "abcdefg", "name": "x"}', False),  # over maxLength
])
def test_admitted_strings_are_strict_json(backend_and_tokenizer, text, valid):
    assert accepts(backend_and_tokenizer, SCHEMA, text) == valid
    if valid:
        json.loads(text)  # strict: what the grammar admits, a strict parser takes


def test_a_bad_schema_is_the_requests_error(backend_and_tokenizer):
    backend, _ = backend_and_tokenizer
    with pytest.raises(SamplingParamsError, match="invalid json .*no-such-type") as error:
        backend.compile(StructuredOutputsParams(json={"type": "no-such-type"}))
    assert error.value.param == "structured_outputs"
