"""Structured outputs: a request's tokens constrained to a JSON schema, a regular expression, a
list of choices or an EBNF grammar (xgrammar compiles them and tracks each sequence's state)."""
from inference_engine.structured_output.params import StructuredOutputsParams

__all__ = ["StructuredOutputsParams"]
