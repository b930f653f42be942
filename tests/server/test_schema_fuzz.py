"""Schema fuzzing: schemathesis reads the live /openapi.json and sends every operation requests
generated from it, valid and invalid ones. The server must never answer 5xx, must answer only
what the schema documents (status code, content type, headers, JSON body), and must stay
healthy throughout.

Every operation is fuzzed and every failing one reported, each with the request as a curl
command; generation is derandomized, so a rerun sends the same requests."""
import os
import traceback

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from utils.server import SERVER_ARGS, ServerThread

# Generated requests may ask for anything; these flags bound what the server then does, so
# every answer stays cheap: a context of 64 tokens bounds prompts and max_tokens, 4 sequences
# a step bound n, best_of and beams, and 8 new tokens is a chat answer's default length.
CHEAP_GENERATION = ["--max-model-len", "64", "--max-num-seqs", "4",
                    "--override-generation-config", '{"max_tokens": 8}']
# So that /v1/load_lora_adapter and /v1/unload_lora_adapter read their requests rather than
# refusing them all (no generated path holds an adapter: loads answer 400, unloads 404).
RUNTIME_LORA = ["--enable-lora", "--allow-runtime-lora-updating"]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
# Per operation and generation mode (valid, invalid requests): the file runs in 1.5 minutes on
# two cores (50: 4.5 minutes, which CI cannot spare); SCHEMA_FUZZ_EXAMPLES=50 fuzzes longer.
MAX_EXAMPLES = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "15"))
REQUEST_TIMEOUT_S = 120
FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                         database=None, suppress_health_check=list(HealthCheck))
# Nothing from the environment (a schemathesis.toml) changes what is sent; reports print
# requests whole (sanitizing would hide max_tokens and logit_bias: their names look secret).
FUZZ_CONFIG = schemathesis.Config.from_dict({"output": {"sanitization": {"enabled": False}}})


@pytest.fixture(scope="module")
def fuzz_server():
    """Without --api-key: the 401s the schema documents are test_server_cli's to check."""
    with ServerThread([*SERVER_ARGS, *CHEAP_GENERATION, *RUNTIME_LORA]) as running:
        yield running


@pytest.mark.slow
def test_every_operation_answers_as_documented(fuzz_server):
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json", config=FUZZ_CONFIG)
    operations = [result.ok() for result in schema.get_all_operations()]  # raises if malformed
    routes = {f"{method} {route.path}" for route in fuzz_server.app.routes
              if getattr(route, "include_in_schema", False) for method in route.methods}
    assert {operation.label for operation in operations} == routes
    # Walked here rather than by schemathesis' pytest integration (`from_fixture(...)
    # .parametrize()`), which reads `Node._nodeid`, gone since pytest 9.2.
    failures = []
    for operation in operations:
        for mode in _modes(operation):
            try:
                fuzz(operation, mode, fuzz_server.url)
            except (Exception, FailureGroup) as exc:  # noqa: BLE001 - all are reported
                failures.append(f"{operation.label} ({mode.value} requests):\n"
                                f"{_describe(exc)}")
    assert not failures, "\n\n".join(failures)


def test_server_is_healthy_after_fuzzing(fuzz_server):
    assert httpx.get(fuzz_server.url + "/health").status_code == 200
    completion = httpx.post(fuzz_server.url + "/v1/completions",
                            json={"prompt": "Hello", "max_tokens": 2}, timeout=60)
    assert completion.status_code == 200, completion.text


def fuzz(operation, mode: GenerationMode, url: str) -> None:
    """Sends `operation` MAX_EXAMPLES generated requests of `mode` and checks each answer, and
    the server's health after it; raises on the first failure (shrunk to a small request)."""
    @FUZZ_SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case):
        case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT_S)
        # After every request, so that one that kills the engine is the one named.
        health = httpx.get(url + "/health", timeout=REQUEST_TIMEOUT_S)
        assert health.status_code == 200, f"unhealthy after:\n    {case.as_curl_command()}"

    send()


def _modes(operation) -> list[GenerationMode]:
    """Valid requests, and invalid ones where the operation takes something that can be
    invalid (one without parameters or a body has no invalid request)."""
    if operation.body or any(operation.iter_parameters()):
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def _describe(exc: BaseException) -> str:
    """The failures in `exc` (Hypothesis groups distinct ones), each with its checks' report
    and the request as a curl command."""
    if isinstance(exc, BaseExceptionGroup) and not isinstance(exc, FailureGroup):
        return "\n".join(_describe(inner) for inner in exc.exceptions)
    return "".join(traceback.format_exception_only(exc))
