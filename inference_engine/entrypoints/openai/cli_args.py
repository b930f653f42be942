"""`inference-engine serve`: the server's own flags on top of every EngineArgs flag (the same
ones the offline LLM takes: --model, --max-model-len, --max-num-seqs, --dtype, ...)."""
import argparse
import json
import os

from inference_engine import envs
from inference_engine.engine.arg_utils import EngineArgs


def _json_list(text: str) -> list[str]:
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise argparse.ArgumentTypeError(f"expected a JSON list of strings, got {text!r}")
    return value


def _lora_module(text: str) -> tuple[str, str]:
    """NAME=PATH, or vLLM's JSON form {"name": NAME, "path": PATH}."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
            return str(value["name"]), str(value["path"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise argparse.ArgumentTypeError(f"expected {{\"name\": ..., \"path\": ...}}, "
                                             f"got {text!r}") from exc
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def _chat_template(value: str) -> str:
    """vLLM's --chat-template: a template file's path, or the Jinja template itself."""
    import jinja2
    if os.path.isfile(value):
        with open(value, encoding="utf-8") as f:
            value = f.read()
    elif "{{" not in value and "{%" not in value:
        raise argparse.ArgumentTypeError(f"no file {value!r}, nor a Jinja template")
    try:
        jinja2.Environment().parse(value)
    except jinja2.TemplateSyntaxError as exc:
        raise argparse.ArgumentTypeError(f"not a valid Jinja template: {exc}") from exc
    return value


def lora_requests_from(args: argparse.Namespace) -> dict:
    """The adapters named by --lora-modules, by name (ids from 1 in the order given)."""
    from inference_engine.lora.request import LoRARequest
    modules = args.lora_modules or []
    if modules and not args.enable_lora:
        raise ValueError("--lora-modules needs --enable-lora")
    names = [name for name, _ in modules]
    if len(set(names)) != len(names):
        raise ValueError(f"--lora-modules names must differ, got {names}")
    return {name: LoRARequest(name, i, path) for i, (name, path) in enumerate(modules, start=1)}


def make_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Adds the serve flags to `parser` (a new one if None) and returns it."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="inference-engine serve")
    parser.add_argument("model_tag", nargs="?", default=None,
                        help="the model to serve; same as --model")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 for every interface")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", default=envs.get(envs.API_KEY),
                        help="require `Authorization: Bearer KEY` on every /v1 route "
                             "(default: $INFERENCE_ENGINE_API_KEY)")
    parser.add_argument("--allowed-origins", type=_json_list, default=[],
                        help='origins whose pages may call the API from a browser (CORS), a '
                             'JSON list such as \'["https://app.example.com"]\' or \'["*"]\' '
                             "(default: none; CORS is off)")
    parser.add_argument("--allowed-methods", type=_json_list, default=["*"],
                        help="CORS methods, a JSON list (with --allowed-origins)")
    parser.add_argument("--allowed-headers", type=_json_list, default=["*"],
                        help="CORS request headers, a JSON list (with --allowed-origins)")
    parser.add_argument("--allow-credentials", action="store_true",
                        help="allow CORS requests with credentials")
    _add_limit_args(parser)
    parser.add_argument("--log-stats-interval", type=float, default=5.0,
                        help="seconds between throughput log lines (see --disable-log-stats)")
    parser.add_argument("--shutdown-timeout", type=float, default=30.0,
                        help="on SIGTERM, seconds to let open requests finish")
    parser.add_argument("--uvicorn-log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug", "trace"])
    parser.add_argument("--enable-auto-tool-choice", action="store_true",
                        help='let the model call tools itself (tool_choice "auto", the default '
                             "when a request gives tools); needs --tool-call-parser")
    parser.add_argument("--tool-call-parser", default=None, choices=["hermes", "llama3_json"],
                        help="how the model writes tool calls: hermes (Qwen2.5, Qwen3, Hermes) "
                             "or llama3_json (Llama 3.1+)")
    parser.add_argument("--reasoning-parser", default=None, choices=["qwen3", "deepseek_r1"],
                        help="return a reasoning model's <think> section apart, as "
                             "reasoning_content")
    parser.add_argument("--chat-template", type=_chat_template, default=None,
                        help="the chat template (a file, or the Jinja text) of chat requests "
                             "that give none, in place of the tokenizer's own")
    parser.add_argument("--lora-modules", type=_lora_module, nargs="+", default=None,
                        metavar="NAME=PATH",
                        help="LoRA adapters (PEFT folders) served under their own model names; "
                             "needs --enable-lora")
    parser.add_argument("--allow-runtime-lora-updating", action="store_true",
                        default=envs.is_on(envs.ALLOW_RUNTIME_LORA_UPDATING),
                        help="serve POST /v1/load_lora_adapter and /v1/unload_lora_adapter "
                             "(needs --enable-lora; default: "
                             "$INFERENCE_ENGINE_ALLOW_RUNTIME_LORA_UPDATING)")
    EngineArgs.add_cli_args(parser)
    return parser


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value
    return parse


def _add_limit_args(parser: argparse.ArgumentParser) -> None:
    """What a request may cost the server: refused (4xx or 503) beyond these."""
    limits = parser.add_argument_group("request limits")
    limits.add_argument("--max-request-body-bytes", type=_positive(int), default=8 << 20,
                        help="answer 413 to a request body over this many bytes (default: "
                             "8 MiB)")
    limits.add_argument("--http-header-timeout", type=_positive(float), default=10.0,
                        help="close a connection whose request headers take longer than this "
                             "many seconds to arrive")
    limits.add_argument("--http-body-timeout", type=_positive(float), default=30.0,
                        help="answer 408 to a request body not received within this many "
                             "seconds")
    limits.add_argument("--max-waiting-requests", type=int, default=None,
                        help="refuse new requests (503 with Retry-After) while this many wait "
                             "beyond the --max-num-seqs a step runs (default: 8 x "
                             "--max-num-seqs; 0: no limit)")
    limits.add_argument("--queue-timeout", type=_positive(float), default=None,
                        help="give up a request (503) not scheduled within this many seconds "
                             "(default: never)")
    limits.add_argument("--stream-stall-timeout", type=_positive(float), default=60.0,
                        help="abort a request whose client has read none of its stream for "
                             "this many seconds")
    limits.add_argument("--max-prompt-bytes", type=_positive(int), default=None,
                        help="refuse (400) a prompt or chat message over this many bytes "
                             "before tokenizing it (default: 32 x --max-model-len, at least "
                             "1 MiB)")
    limits.add_argument("--trust-request-chat-template", action="store_true",
                        help="let requests bring their own chat_template (rendered in a "
                             "sandboxed process, within --request-chat-template-timeout); "
                             "otherwise such requests are refused (400)")
    limits.add_argument("--request-chat-template-timeout", type=_positive(float), default=5.0,
                        help="seconds a request's own chat template may take to render")


def engine_args_from(args: argparse.Namespace) -> EngineArgs:
    """The engine settings of parsed serve flags; a positional model wins over --model."""
    engine_args = EngineArgs.from_cli_args(args)
    if args.model_tag:
        engine_args.model = args.model_tag
    return engine_args
