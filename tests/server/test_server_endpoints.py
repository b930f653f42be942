"""The small endpoints (models, health, version, tokenize, detokenize, metrics, the OpenAPI
schema), request ids."""
import importlib.util
from pathlib import Path

import httpx


def test_models_lists_the_served_model(client, model, server):
    models = client.models.list().data
    assert [m.id for m in models] == [model]
    raw = httpx.get(server.url + "/v1/models").json()
    assert raw["object"] == "list" and raw["data"][0]["object"] == "model"
    assert raw["data"][0]["max_model_len"] == 512


def test_health_version_and_openapi(server):
    assert httpx.get(server.url + "/health").status_code == 200
    from inference_engine import __version__
    assert httpx.get(server.url + "/version").json() == {"version": __version__}
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    for path in ("/v1/completions", "/v1/chat/completions", "/v1/models", "/tokenize",
                 "/detokenize", "/health", "/version", "/metrics"):
        assert path in paths


def test_tokenize_and_detokenize_round_trip(server):
    text = "Paged attention, continuous batching."
    tokens = httpx.post(server.url + "/tokenize", json={"prompt": text}).json()
    assert tokens["count"] == len(tokens["tokens"]) > 0 and tokens["max_model_len"] == 512
    back = httpx.post(server.url + "/detokenize", json={"tokens": tokens["tokens"]}).json()
    assert back == {"prompt": text}


def test_metrics_page_has_the_engine_series(server):
    response = httpx.get(server.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    for name in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc",
                 "prompt_tokens_total", "generation_tokens_total", "num_preemptions_total",
                 "time_to_first_token_seconds_bucket", "cache_config_info"):
        assert f"inference_engine:{name}" in response.text


def test_metrics_cover_every_series_the_grafana_dashboard_queries(server):
    # tests/docker is not on the import path; its helper is loaded from its file.
    path = Path(__file__).resolve().parents[1] / "docker" / "dashboard_metrics.py"
    spec = importlib.util.spec_from_file_location("dashboard_metrics", path)
    dashboard = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dashboard)
    exposed = dashboard.exposed_metric_names(httpx.get(server.url + "/metrics").text)
    assert dashboard.dashboard_metric_names() <= exposed


def test_every_response_carries_a_request_id(server, model):
    given = httpx.post(server.url + "/v1/completions", headers={"X-Request-Id": "trace-42"},
                       json={"model": model, "prompt": "Hi", "max_tokens": 1})
    assert given.headers["x-request-id"] == "trace-42"
    assert given.json()["id"] == "cmpl-trace-42"
    for response in (httpx.get(server.url + "/health"),
                     httpx.post(server.url + "/v1/completions", json={"prompt": ""})):
        assert len(response.headers["x-request-id"]) == 32
    first, second = (httpx.get(server.url + "/version") for _ in range(2))
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
