"""The request fields that ask for structured outputs: OpenAI's `response_format`, vLLM's
`structured_outputs` and its older `guided_*` extras (and, in chat, a forced tool call)."""
from typing import Any, Literal

from pydantic import Field

from inference_engine.entrypoints.openai.base import OpenAIBaseModel, OpenAIRequest
from inference_engine.errors import SamplingParamsError


class JsonSchemaFormat(OpenAIBaseModel):
    name: str | None = None
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(OpenAIBaseModel):
    """OpenAI's `response_format`: plain text, any JSON object, or JSON of a schema."""
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StructuredOutputsRequest(OpenAIRequest):
    """Each field names one kind of constraint; a request may give one."""
    response_format: ResponseFormat | None = None
    # {"json" | "regex" | "choice" | "grammar" | "json_object": ...}
    structured_outputs: dict[str, Any] | None = None
    guided_json: str | dict[str, Any] | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None

    def structured_outputs_params(self) -> dict[str, Any] | None:
        """The one structured-output constraint the request gives, as StructuredOutputsParams'
        fields; None for none."""
        given = {}
        if self.response_format is not None and self.response_format.type != "text":
            if self.response_format.type == "json_object":
                given["response_format"] = {"json_object": True}
            else:
                schema = self.response_format.json_schema
                if schema is None or schema.json_schema is None:
                    raise SamplingParamsError("response_format", "response_format of type "
                                              "json_schema needs json_schema.schema")
                given["response_format"] = {"json": schema.json_schema}
        if self.structured_outputs:
            given["structured_outputs"] = self.structured_outputs
        for kind in ("json", "regex", "choice", "grammar"):
            value = getattr(self, f"guided_{kind}")
            if value is not None:
                given[f"guided_{kind}"] = {kind: value}
        given.update(self._tool_constraint())
        if len(given) > 1:
            raise SamplingParamsError(next(iter(given)), "give one structured-output constraint, "
                                      f"got {', '.join(given)}")
        return next(iter(given.values()), None)

    def _tool_constraint(self) -> dict[str, dict[str, Any]]:
        return {}  # chat requests may force tool calls
