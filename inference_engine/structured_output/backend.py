"""Structured outputs through xgrammar: the constraints compiled against the tokenizer's
vocabulary (xgrammar caches them by their text), a matcher per sequence."""
import json

from inference_engine.errors import SamplingParamsError
from inference_engine.sampling_params import StructuredOutputsParams

# xgrammar (0.2.9) writes a string of bounded length (minLength/maxLength) with the character
# class below, which lets raw control characters (U+0000-U+001F but CR and LF) into the string:
# the output is no JSON that a strict parser takes (seen on a GPU with random weights). The class
# every other JSON string of xgrammar uses keeps them out; a newer xgrammar without the loose
# class leaves the grammar as it is.
LOOSE_JSON_CHAR = r'[^\"\\\r\n]'
STRICT_JSON_CHAR = r'[^\0-\x1f\"\\]'


class GrammarBackend:
    """Made once per engine, on the first request that asks for structured outputs."""

    def __init__(self, tokenizer, vocab_size: int):
        try:
            import xgrammar
        except ImportError as exc:
            raise SamplingParamsError("structured_outputs", "structured outputs need the "
                                      "xgrammar package (pip install xgrammar)") from exc
        self.xgr = xgrammar
        # The model's vocabulary may be padded beyond the tokenizer's: the masks cover all of it.
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self.compiler = xgrammar.GrammarCompiler(info, cache_enabled=True)

    def compile(self, params: StructuredOutputsParams):
        """The constraint compiled (an xgrammar CompiledGrammar); a SamplingParamsError naming
        structured_outputs when it is no valid schema, expression or grammar."""
        kind = params.kind
        try:
            if kind == "json":
                schema = params.json if isinstance(params.json, str) else json.dumps(params.json)
                return self.compiler.compile_grammar(json_schema_ebnf(self.xgr, schema))
            if kind == "json_object":
                return self.compiler.compile_builtin_json_grammar()
            if kind == "regex":
                return self.compiler.compile_regex(params.regex)
            if kind == "choice":
                # Each choice a string literal of an EBNF rule (JSON's escapes are EBNF's).
                alternatives = " | ".join(json.dumps(c, ensure_ascii=False) for c in params.choice)
                return self.compiler.compile_grammar(f"root ::= {alternatives}")
            return self.compiler.compile_grammar(params.grammar)
        except Exception as exc:  # xgrammar raises RuntimeError / ValueError with its reason
            raise SamplingParamsError("structured_outputs",
                                      f"invalid {kind} for structured outputs: {exc}") from exc

    def matcher(self, compiled, stop_token_ids: list[int]):
        """A fresh matcher: the output may end (once the constraint is complete) only with one
        of `stop_token_ids` (the tokenizer's own stop tokens where none are given)."""
        return self.xgr.GrammarMatcher(compiled, override_stop_tokens=stop_token_ids or None)


def json_schema_ebnf(xgrammar, schema: str) -> str:
    """The schema's grammar as xgrammar converts it (compact separators), its strings kept
    free of raw control characters."""
    ebnf = str(xgrammar.Grammar.from_json_schema(schema, any_whitespace=False))
    return ebnf.replace(LOOSE_JSON_CHAR, STRICT_JSON_CHAR)
