"""The examples in README.md and docs/ work: every `inference-engine` command line in them parses
with the real CLI (models named by hub id or placeholder path), the README's Python example runs
on the embedded model, and docs/distributed.md's runs as written against a stand-in hub."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from inference_engine.engine.arg_utils import EngineArgs
from inference_engine.entrypoints.cli import make_parser
from inference_engine.transformers_utils.hub import is_hub_id
from utils.hf_checkpoint import tiny_llama_config, write_hf_checkpoint
from utils.hub_standin import StandInHub

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "docker" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def fenced_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", path.read_text(), re.S)


def command_lines() -> list[tuple[str, str]]:
    """(document, command) for each `inference-engine ...` command: the lines of shell blocks
    (continuations joined) and the inline code spans of the text."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        shell = "\n".join(fenced_blocks(doc, "bash")).replace("\\\n", " ")
        spans = re.findall(r"`(inference-engine [^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        for line in [*shell.splitlines(), *spans]:
            line = line.strip()
            if "inference-engine " in line and not line.startswith("#"):
                found.append((doc.name, line[line.index("inference-engine "):]))
    return found


@pytest.mark.parametrize("doc,command", command_lines())
def test_command_lines_parse(doc, command):
    argv = [a for a in shlex.split(command)[1:] if a != "..."]
    if argv in (["serve"], ["serve", "--help"]):
        return
    args = make_parser().parse_args(argv)
    engine_args = EngineArgs.from_cli_args(args)
    model = engine_args.model
    assert (model is None or is_hub_id(model) or model.startswith(("path/to/", "/models/"))
            or model.endswith(".gguf")), model


def test_the_readme_python_example_runs():
    (example,) = fenced_blocks(ROOT / "README.md", "python")
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Paris" in result.stdout


def test_the_distributed_example_runs_as_written(tmp_path):
    """Tensor parallelism over 4 CPU ranks on a hub id: the stand-in serves a tiny Llama under
    the name the example gives."""
    (example,) = fenced_blocks(ROOT / "docs" / "distributed.md", "python")
    name = re.search(r'LLM\("([^"]+)"', example).group(1)
    hub = StandInHub()
    hub.add_folder(name, write_hf_checkpoint(tmp_path / "tiny", tiny_llama_config(), seed=2))
    hub.start()
    script = tmp_path / "example.py"
    script.write_text(example)
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0",
           "HF_HOME": str(tmp_path / "hf")}
    try:
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                timeout=600, env=env)
    finally:
        hub.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()
