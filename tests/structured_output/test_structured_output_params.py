"""StructuredOutputsParams and the OpenAI request fields that make them: one constraint, or a
clear error naming the field."""
import pytest

from inference_engine.errors import SamplingParamsError
from inference_engine.sampling_params import SamplingParams
from inference_engine.sampling_params import StructuredOutputsParams


def test_exactly_one_constraint():
    assert StructuredOutputsParams(regex="a+").kind == "regex"
    assert StructuredOutputsParams(json_object=True).kind == "json_object"
    for fields in ({}, {"regex": "a", "choice": ["b"]}, {"json_object": True, "json": {}}):
        with pytest.raises(SamplingParamsError, match="exactly one of") as err:
            StructuredOutputsParams(**fields)
        assert err.value.param == "structured_outputs"


@pytest.mark.parametrize("choice", [[], [""], ["a", 3]])
def test_choices_are_non_empty_strings(choice):
    with pytest.raises(SamplingParamsError, match="choice must be"):
        StructuredOutputsParams(choice=choice)


def test_sampling_params_take_a_dict_and_refuse_unknown_fields():
    params = SamplingParams(structured_outputs={"choice": ["yes", "no"]})
    assert params.structured_outputs == StructuredOutputsParams(choice=["yes", "no"])
    with pytest.raises(SamplingParamsError, match="unknown structured_outputs field.*schema"):
        SamplingParams(structured_outputs={"schema": {}})


def test_openai_request_fields_map_to_one_constraint():
    pytest.importorskip("pydantic")
    from inference_engine.entrypoints.openai.protocol import ChatCompletionRequest
    messages = [{"role": "user", "content": "hi"}]
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    cases = [
        ({"response_format": {"type": "json_object"}}, {"json_object": True}),
        ({"response_format": {"type": "json_schema",
                              "json_schema": {"name": "x", "schema": schema}}}, {"json": schema}),
        ({"response_format": {"type": "text"}}, None),
        ({"guided_regex": "[0-9]+"}, {"regex": "[0-9]+"}),
        ({"guided_choice": ["a", "b"]}, {"choice": ["a", "b"]}),
        ({"structured_outputs": {"grammar": "root ::= \"x\""}}, {"grammar": "root ::= \"x\""}),
        ({}, None),
    ]
    for body, expected in cases:
        request = ChatCompletionRequest(messages=messages, **body)
        assert request.structured_outputs_params() == expected, body
    both = ChatCompletionRequest(messages=messages, guided_regex="a",
                                 response_format={"type": "json_object"})
    with pytest.raises(SamplingParamsError, match="give one structured-output constraint"):
        both.structured_outputs_params()
    no_schema = ChatCompletionRequest(messages=messages, response_format={"type": "json_schema"})
    with pytest.raises(SamplingParamsError, match="needs json_schema.schema"):
        no_schema.structured_outputs_params()
