"""Metric names that the Grafana dashboard queries, and those a /metrics page exposes.

The live-server test checks `dashboard_metric_names(DASHBOARD) <= exposed_metric_names(text)`
with the text of a running server's /metrics. Both sides use family names: a histogram's
`_bucket`, `_sum` and `_count` series count as the histogram itself (Prometheus reserves those
suffixes for histograms and summaries), while a counter keeps its `_total`, as the `# TYPE` line
of Prometheus' text format names it.
"""
import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "docker/grafana/dashboards/inference-engine.json"

_SERIES_SUFFIXES = ("_bucket", "_sum", "_count")
# Words that look like metric names but belong to PromQL itself.
_KEYWORDS = {"and", "or", "unless", "atan2", "by", "without", "on", "ignoring",
             "group_left", "group_right", "offset", "bool", "inf", "nan"}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
# A name not glued to a number (so no `m` of `5m`, no `e3` of `1e3`).
_IDENTIFIER = re.compile(r"(?<![\w:.])[A-Za-z_:][\w:]*")
_LABEL_VALUES = re.compile(r"\s*label_values\((?P<expr>.*),\s*\w+\s*\)\s*", re.S)
_QUERY_RESULT = re.compile(r"\s*query_result\((?P<expr>.*)\)\s*", re.S)


def promql_metric_names(expr: str) -> set[str]:
    """Series names that a PromQL expression selects, as written (`x_bucket` stays)."""
    for pattern in (_STRING, re.compile(r"\{[^}]*\}"), re.compile(r"\[[^\]]*\]"),
                    _GROUPING, _GRAFANA_VARIABLE):
        expr = pattern.sub(" ", expr)
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        is_call = expr[match.end():].lstrip().startswith("(")
        if not is_call and match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def family_name(series: str) -> str:
    """The metric family a series belongs to: `h_bucket`, `h_sum`, `h_count` -> `h`."""
    for suffix in _SERIES_SUFFIXES:
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def _template_expr(query) -> str | None:
    """The PromQL inside a Grafana template variable's query, if it has any."""
    if isinstance(query, dict):
        query = query.get("query", "")
    if not isinstance(query, str):
        return None
    for pattern in (_LABEL_VALUES, _QUERY_RESULT):
        match = pattern.fullmatch(query)
        if match:
            return match.group("expr")
    # label_values(label) with no metric, or metrics(regex): nothing to select.
    if re.match(r"\s*(label_values|label_names|metrics)\(", query):
        return None
    return query


def dashboard_queries(path: Path | str = DASHBOARD) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets (rows included) and variables."""
    dashboard = json.loads(Path(path).read_text())
    queries = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                queries.append(node["expr"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            expr = _template_expr(variable.get("query"))
            if expr:
                queries.append(expr)
    return queries


def dashboard_metric_names(path: Path | str = DASHBOARD) -> set[str]:
    """Family names of every metric the dashboard's queries select."""
    return {family_name(name) for expr in dashboard_queries(path)
            for name in promql_metric_names(expr)}


def exposed_metric_names(metrics_text: str) -> set[str]:
    """Family and series names on a /metrics page (Prometheus text format or OpenMetrics).

    A family is listed by its `# TYPE` line even before it has a sample, as a labelled counter
    is until its first increment. OpenMetrics names counters and infos without their `_total`
    and `_info`, so those spellings are added too.
    """
    names = set()
    for line in metrics_text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
            elif kind == "info":
                names.add(name + "_info")
        elif line and not line.startswith("#"):
            names.add(re.match(r"[^{\s]+", line).group())
    return names
