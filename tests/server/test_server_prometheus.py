"""A real Prometheus scrapes the server's /metrics, and its query API returns our series.

Prometheus comes from Debian's `prometheus` package (.ci/run installs it). Without it the test
is skipped, except under CI (CI=true), where a missing or broken Prometheus fails it.
"""
import os
import shutil
import subprocess

import httpx
import pytest

from utils.server import free_port, wait_until

PREFIX = "inference_engine:"
EXPECTED_SERIES = [
    *(PREFIX + n for n in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc",
                           "prompt_tokens_total", "generation_tokens_total",
                           "num_preemptions_total", "request_success_total",
                           "cache_config_info")),
    *(PREFIX + n + suffix
      for n in ("time_to_first_token_seconds", "time_per_output_token_seconds",
                "e2e_request_latency_seconds", "request_queue_time_seconds",
                "request_prompt_tokens", "request_generation_tokens")
      for suffix in ("_bucket", "_sum", "_count")),
]


def unavailable(reason: str):
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason}; CI must run this test (apt-get install -y prometheus)")
    pytest.skip(reason)


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        unavailable("prometheus is not installed")
    return binary


@pytest.fixture
def prometheus(prometheus_binary, server, tmp_path):
    """Prometheus on a free loopback port, scraping the test server every second."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: inference-engine\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.port}']\n")
    url = f"http://127.0.0.1:{free_port()}"
    log = open(tmp_path / "prometheus.log", "w")
    process = subprocess.Popen(
        [prometheus_binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address={url.removeprefix('http://')}"],
        stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        if process.poll() is not None:
            return True
        try:
            return httpx.get(url + "/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, timeout=60, interval=0.2, what="prometheus ready")
        if process.poll() is not None:
            unavailable(f"prometheus exited with {process.returncode}: "
                        f"{(tmp_path / 'prometheus.log').read_text()[-2000:]}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def query(url: str, promql: str) -> list[dict]:
    body = httpx.get(url + "/api/v1/query", params={"query": promql}, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_our_series(prometheus, client, model):
    out = client.completions.create(model=model, prompt="Hello", max_tokens=4, temperature=0)
    generated = out.usage.completion_tokens

    def scraped_after_the_request():
        result = query(prometheus, PREFIX + "generation_tokens_total")
        return result and float(result[0]["value"][1]) >= generated

    wait_until(scraped_after_the_request, timeout=60, interval=0.5, what="a scrape with tokens")
    assert float(query(prometheus, 'up{job="inference-engine"}')[0]["value"][1]) == 1
    info = query(prometheus, PREFIX + "cache_config_info")[0]["metric"]
    assert info["block_size"] == "16" and int(info["num_blocks"]) > 0
    reasons = {r["metric"]["finished_reason"]
               for r in query(prometheus, PREFIX + "request_success_total")}
    assert "length" in reasons
    assert float(query(prometheus, PREFIX + "time_to_first_token_seconds_count")[0]["value"][1]) > 0
    names = httpx.get(prometheus + "/api/v1/label/__name__/values").json()["data"]
    assert set(EXPECTED_SERIES) <= set(names)
