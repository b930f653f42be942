"""The child process that renders request-supplied chat templates (chat_template_sandbox.py).

Run by path with `python -P` (never imported: it loads nothing of the engine, only Jinja and
transformers' template renderer). Argument: the bytes of memory it may use beyond what it holds
once started, and the most characters a rendered prompt may have. It reads one JSON job a line
from stdin, `render_jinja_template`'s keyword arguments, and writes one JSON line to stdout:
{"text": ...} or {"error": ...} (and a first line once it is ready). The parent kills it when
a job runs past its time limit.
"""
import json
import resource
import sys


def _limit_memory(extra_bytes: int) -> None:
    """Caps the address space at what is mapped now plus `extra_bytes`: a template that builds
    a huge string fails with MemoryError here instead of taking the server's memory."""
    with open("/proc/self/status") as f:
        vm_kib = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    limit = vm_kib * 1024 + extra_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _render(job: dict, max_chars: int) -> dict:
    from transformers.utils.chat_template_utils import render_jinja_template
    rendered, _ = render_jinja_template(**job)
    text = rendered[0]
    if len(text) > max_chars:
        return {"error": f"the rendered prompt has {len(text)} characters, over the limit of "
                         f"{max_chars}", "kind": "too_long"}
    return {"text": text}


def main() -> None:
    extra_bytes, max_chars = int(sys.argv[1]), int(sys.argv[2])
    from transformers.utils.chat_template_utils import render_jinja_template  # noqa: F401
    _limit_memory(extra_bytes)
    sys.stdout.write("{\"ready\": true}\n")
    sys.stdout.flush()
    for line in sys.stdin:
        try:
            reply = _render(json.loads(line), max_chars)
        except MemoryError:
            reply = {"error": "the chat template used too much memory", "kind": "memory"}
        except Exception as exc:  # noqa: BLE001 - the template's own error, told to the client
            reply = {"error": f"{type(exc).__name__}: {exc}", "kind": "template"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
