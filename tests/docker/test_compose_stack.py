"""docker/: the compose file, the Prometheus configuration and Grafana's provisioning agree."""
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
SERVERS = {"cuda": "server-cuda", "rocm": "server-rocm"}


def compose_config(compose, profile: str) -> dict:
    """The compose model as `docker compose config` resolves it (no engine is needed)."""
    # Only PATH and HOME pass, and no docker/.env is read, so that a developer's
    # SERVER_PORT or COMPOSE_PROFILES can't change what is checked.
    env = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    result = subprocess.run(
        [*compose, "--env-file", os.devnull, "-f", str(DOCKER / "compose.yaml"),
         "--profile", profile, "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def mounts(service: dict) -> dict[str, str]:
    """Container path -> host path (bind) or volume name."""
    return {v["target"]: v["source"] for v in service.get("volumes", [])}


@pytest.mark.parametrize("profile", SERVERS)
def test_compose_config_accepts_each_profile(compose, profile):
    config = compose_config(compose, profile)
    services = config["services"]
    assert set(services) == {SERVERS[profile], "prometheus", "grafana"}
    server = services[SERVERS[profile]]
    assert server["build"]["dockerfile"] == f"Dockerfile.{profile}"
    assert (Path(server["build"]["context"]) / server["build"]["dockerfile"]).is_file()
    assert [p["target"] for p in server["ports"]] == [8000]
    assert "/models" in mounts(server)
    assert "inference-engine" in server["networks"]["default"]["aliases"]

    for target, source in {**mounts(services["prometheus"]), **mounts(services["grafana"])}.items():
        if source.startswith("/"):
            assert Path(source).exists(), f"{source} (mounted at {target}) is missing"


def test_nvidia_server_reserves_the_gpus(compose):
    server = compose_config(compose, "cuda")["services"]["server-cuda"]
    [device] = server["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_amd_server_gets_the_rocm_devices(compose):
    server = compose_config(compose, "rocm")["services"]["server-rocm"]
    assert {d["source"] for d in server["devices"]} == {"/dev/kfd", "/dev/dri"}
    assert "video" in server["group_add"]


def test_promtool_accepts_the_prometheus_config(require_tool):
    promtool = require_tool("promtool")
    result = subprocess.run([promtool, "check", "config", "prometheus/prometheus.yml"],
                            cwd=DOCKER, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_server_alias():
    config = yaml.safe_load((DOCKER / "prometheus/prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]]
    assert targets == ["inference-engine:8000"]


def test_grafana_provisioning_matches_the_mounts_and_dashboard():
    compose_file = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    grafana_mounts = {}
    for volume in compose_file["services"]["grafana"]["volumes"]:
        source, target = volume.split(":")[:2]
        grafana_mounts[target] = source
    assert grafana_mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"

    providers = yaml.safe_load(
        (DOCKER / "grafana/provisioning/dashboards/inference-engine.yaml").read_text())
    dashboard_folder = grafana_mounts[providers["providers"][0]["options"]["path"]]
    assert (DOCKER / dashboard_folder / "inference-engine.json").is_file()

    [datasource] = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    dashboard = json.loads((DOCKER / dashboard_folder / "inference-engine.json").read_text())
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"] if "datasource" in panel}
    uids |= {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {datasource["uid"]}
