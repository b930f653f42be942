"""`inference-engine`: `generate` runs one prompt or chat message offline, `serve` starts the
OpenAI-compatible server. A Ctrl-C before the server runs (while torch imports, or the model
loads) ends it with one line, not a traceback."""
import argparse
import logging
import sys


def _generate(args: argparse.Namespace) -> None:
    from inference_engine.engine.arg_utils import EngineArgs
    from inference_engine.entrypoints.llm import LLM
    from inference_engine.sampling_params import SamplingParams
    llm = LLM(**vars(EngineArgs.from_cli_args(args)))
    params = SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature)
    if args.chat is not None:
        out = llm.chat([{"role": "user", "content": args.chat}], params, use_tqdm=False)
    else:
        out = llm.generate(args.prompt, params, use_tqdm=False)
    print(out[0].outputs[0].text)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(asctime)s %(name)s: %(message)s")
    try:
        _run(argv)
    except KeyboardInterrupt:
        logging.getLogger("inference_engine").error("interrupted")
        sys.exit(130)


def _serve(args: argparse.Namespace) -> None:
    from inference_engine.entrypoints.openai.launcher import run_server
    run_server(args)


def _run(argv: list[str] | None) -> None:
    args = make_parser().parse_args(argv)
    args.func(args)


def make_parser() -> argparse.ArgumentParser:
    """`inference-engine` and its commands, `generate` and `serve`."""
    from inference_engine.engine.arg_utils import EngineArgs
    from inference_engine.entrypoints.openai.cli_args import make_arg_parser
    parser = argparse.ArgumentParser(prog="inference-engine")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="complete one prompt or answer one chat message")
    what = gen.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="text to complete")
    what.add_argument("--chat", help="a user message, answered through the chat template")
    gen.add_argument("--max-tokens", type=int, default=128)
    gen.add_argument("--temperature", type=float, default=0.0)
    EngineArgs.add_cli_args(gen)
    gen.set_defaults(func=_generate)
    serve = sub.add_parser("serve", help="start the OpenAI-compatible server")
    make_arg_parser(serve)
    serve.set_defaults(func=_serve)
    return parser


if __name__ == "__main__":
    sys.exit(main())
