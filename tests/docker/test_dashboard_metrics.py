"""The Grafana dashboard queries exactly the metrics of issue #7, in valid PromQL."""
import re
import subprocess

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from dashboard_metrics import (DASHBOARD, dashboard_metric_names, dashboard_queries,
                               exposed_metric_names, family_name, promql_metric_names)

PREFIX = "inference_engine:"
GAUGES = ["num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"]
COUNTERS = ["prompt_tokens_total", "generation_tokens_total", "num_preemptions_total"]
HISTOGRAMS = ["time_to_first_token_seconds", "time_per_output_token_seconds",
              "e2e_request_latency_seconds", "request_queue_time_seconds",
              "request_prompt_tokens", "request_generation_tokens"]
# The server's metrics as the issue names them; request_success_total is labelled.
ISSUE_METRICS = {PREFIX + name for name in [*GAUGES, *COUNTERS, *HISTOGRAMS,
                                            "request_success_total", "cache_config_info"]}


def test_dashboard_queries_every_issue_metric_and_nothing_else():
    assert dashboard_metric_names(DASHBOARD) == ISSUE_METRICS


@pytest.mark.parametrize("expr, names", [
    ("inference_engine:num_requests_running", {"inference_engine:num_requests_running"}),
    ('histogram_quantile(0.99, sum by (le) (rate(x_bucket{instance=~"$instance"}'
     "[$__rate_interval])))", {"x_bucket"}),
    ("sum(rate(a_sum[5m] offset 1h)) / sum(rate(a_count[5m])) * 1e3", {"a_sum", "a_count"}),
    ('a{job="b}"} / on(le) group_left(c) d > bool Inf unless e', {"a", "d", "e"}),
    ("sum without (instance) (f) and ignoring (x) g", {"f", "g"}),
    ("vector(1) + time()", set()),
])
def test_promql_metric_names(expr, names):
    assert promql_metric_names(expr) == names


def test_family_name_strips_only_histogram_series_suffixes():
    assert family_name("t_seconds_bucket") == "t_seconds"
    assert family_name("t_seconds_count") == "t_seconds"
    assert family_name("requests_total") == "requests_total"


def issue_registry() -> CollectorRegistry:
    """A registry with the issue's metrics, as the server is meant to declare them."""
    registry = CollectorRegistry()
    for name in GAUGES:
        Gauge(PREFIX + name, name, registry=registry)
    for name in COUNTERS:
        Counter(PREFIX + name, name, registry=registry)
    for name in HISTOGRAMS:
        Histogram(PREFIX + name, name, registry=registry)
    # Labelled and never incremented: exposed by its TYPE line alone.
    Counter(PREFIX + "request_success_total", "finished", ["finished_reason"], registry=registry)
    Info(PREFIX + "cache_config", "cache", registry=registry).info({"block_size": "16"})
    return registry


@pytest.mark.parametrize("generate", [generate_latest, generate_openmetrics])
def test_exposed_names_cover_the_dashboard(generate):
    text = generate(issue_registry()).decode()
    assert dashboard_metric_names(DASHBOARD) <= exposed_metric_names(text)


def test_exposed_names_miss_what_is_not_served():
    registry = CollectorRegistry()
    Gauge(PREFIX + "num_requests_running", "running", registry=registry)
    missing = dashboard_metric_names(DASHBOARD) - exposed_metric_names(
        generate_latest(registry).decode())
    assert PREFIX + "kv_cache_usage_perc" in missing
    assert PREFIX + "num_requests_running" not in missing


def test_promtool_parses_every_dashboard_query(require_tool, tmp_path):
    promtool = require_tool("promtool")
    # Grafana's variables replaced by values Prometheus itself would accept.
    grafana_values = {"$__rate_interval": "1m", "$instance": ".*"}
    rules = []
    for index, expr in enumerate(dashboard_queries(DASHBOARD)):
        expr = re.sub(r"\$\w+", lambda m: grafana_values[m.group()], expr)
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    rules_file = tmp_path / "dashboard_rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
