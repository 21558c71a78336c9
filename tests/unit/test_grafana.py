"""The Grafana dashboard and the Prometheus alerts query only series that /metrics exposes."""

import json
import re
from pathlib import Path

import yaml

from service import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMQL_WORDS = {"sum", "rate", "increase", "histogram_quantile", "clamp_min", "and", "or",
                "unless", "avg", "max", "min", "count"}
PROMETHEUS_OWN = {"up"}  # recorded by Prometheus itself for every scrape


def grafana_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana/sandbox-dashboard.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def alert_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [r["expr"] for group in rules["groups"] for r in group["rules"]]


def series_in(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside label matchers, strings, ranges,
    grouping clauses and numbers."""
    bare = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]|\b(by|without)\s*\([^)]*\)', " ", expr)
    bare = re.sub(r"(?<![\w.])\d+(\.\d+)?(e[-+]?\d+)?", " ", bare)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", bare))
    return {w for w in words if w not in PROMQL_WORDS and not w.startswith("$")}


def test_series_extraction() -> None:
    assert series_in('sum by (le) (rate(sandbox_job_run_seconds_bucket{outcome="ok"}[5m]))') == {
        "sandbox_job_run_seconds_bucket"}
    assert series_in("sandbox_a / clamp_min(sum(rate(sandbox_b[5m])), 1e-9) > 0.01") == {
        "sandbox_a", "sandbox_b"}


def test_grafana_queries_only_exposed_series() -> None:
    exposed = metrics.sample_names()
    exprs = grafana_exprs()
    assert len(exprs) >= 10
    used = set().union(*map(series_in, exprs))
    assert used <= exposed, used - exposed
    # Every family is on the dashboard.
    assert {f.name for f in metrics.FAMILIES} <= {n.removesuffix("_bucket").removesuffix("_count")
                                                   .removesuffix("_sum") for n in used}


def test_alerts_query_only_exposed_series() -> None:
    used = set().union(*map(series_in, alert_exprs()))
    assert used <= metrics.sample_names() | PROMETHEUS_OWN, used - metrics.sample_names()


def test_prometheus_scrapes_metrics_and_loads_the_alerts() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert all((DEPLOY / "prometheus" / name).is_file() for name in config["rule_files"])
