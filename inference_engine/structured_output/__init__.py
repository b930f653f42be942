"""Structured outputs: a request's tokens constrained to a JSON schema, a regular expression, a
list of choices or an EBNF grammar (xgrammar compiles them and tracks each sequence's state).
What a request asks for is sampling_params.StructuredOutputsParams; the token masks are
sample/bitmask.py's."""
