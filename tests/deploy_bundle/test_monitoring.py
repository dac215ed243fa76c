"""monitoring/: Prometheus rules (promtool check and unit tests), ServiceMonitors,
PrometheusRule, and the Grafana dashboard, for every case of the matrix."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import generate_latest

from .conftest import Rendered, render
from .crd_schemas import SCHEMAS
from .promql import metric_names

# What vLLM v0.10 exports (the names the issue lists, plus the running-requests gauge).
VLLM_METRICS = {
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:request_success_total": "counter",
    "vllm:prompt_tokens_total": "counter",
    "vllm:generation_tokens_total": "counter",
    "vllm:num_requests_waiting": "gauge",
    "vllm:num_requests_running": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
}


def _series_names(name: str, kind: str) -> set[str]:
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return {name}


def load_app_metrics(root: Path) -> Any:
    """The generated repository's own app/metrics.py (it imports prometheus_client only)."""
    spec = importlib.util.spec_from_file_location(
        f"metrics_{root.name}", root / "app" / "metrics.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rag_api_series(root: Path) -> set[str]:
    registry = load_app_metrics(root).ServiceMetrics().registry
    return {sample.name for family in registry.collect() for sample in family.samples}


def rules_file(rendered: Rendered) -> Path:
    return rendered.root / "monitoring" / "prometheus-rules.yaml"


def rules(rendered: Rendered) -> list[dict[str, Any]]:
    groups = yaml.safe_load(rules_file(rendered).read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def known_series(rendered: Rendered) -> set[str]:
    names = rag_api_series(rendered.root)
    for name, kind in VLLM_METRICS.items():
        names |= _series_names(name, kind)
    return names | {r["record"] for r in rules(rendered) if "record" in r}


def test_promtool_checks_the_rules(rendered: Rendered) -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(rules_file(rendered))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_cover_every_window_and_name_only_exported_metrics(rendered: Rendered) -> None:
    recorded = {r["record"] for r in rules(rendered) if "record" in r}
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        assert f"rag:request_errors:ratio_rate{window}" in recorded
        assert f"rag:request_latency_slow:ratio_rate{window}" in recorded
    known = known_series(rendered)
    for rule in rules(rendered):
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')} reads {unknown}"


def test_latency_sli_is_an_existing_bucket_edge(rendered: Rendered) -> None:
    """The le of the SLI is exactly how the app's histogram labels one of its buckets."""
    slo_ms = int(rendered.context.get("slo_p95_latency_ms", "2000"))
    le = repr(slo_ms / 1000)
    assert f'le="{le}"' in rules_file(rendered).read_text()
    metrics = load_app_metrics(rendered.root).ServiceMetrics()
    metrics.request_latency.observe(0.01)
    exposition = generate_latest(metrics.registry).decode()
    assert f'rag_request_latency_seconds_bucket{{le="{le}"}}' in exposition


def test_prometheusrule_carries_the_same_rules(rendered: Rendered) -> None:
    objects = render(rendered.root / "monitoring")
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
        if obj["kind"] in SCHEMAS:
            jsonschema.validate(obj, SCHEMAS[obj["kind"]])
        assert obj["metadata"]["labels"]["rag-portal.io/service"] == rendered.name
        assert obj["metadata"]["namespace"] == rendered.name
    (rule,) = by_kind["PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(rules_file(rendered).read_text())
    monitors = {m["metadata"]["name"]: m for m in by_kind["ServiceMonitor"]}
    assert set(monitors) == {f"{rendered.name}-vllm", f"{rendered.name}-rag-api"}
    # Each ServiceMonitor selects the Service of the same name (its job label).
    services = rendered.by_kind("prod", "Service")
    for name, monitor in monitors.items():
        selector = monitor["spec"]["selector"]["matchLabels"]
        labels = services[name]["metadata"]["labels"]
        assert selector.items() <= labels.items()
        assert monitor["spec"]["endpoints"][0]["port"] in {
            p["name"] for p in services[name]["spec"]["ports"]
        }
    (dashboard,) = by_kind["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    json.loads(dashboard["data"]["rag-service.json"])


def test_crd_schemas_refuse_a_misspelled_field(rendered: Rendered) -> None:
    monitor = yaml.safe_load(
        (rendered.root / "monitoring" / "servicemonitors.yaml").read_text().split("---")[0]
    )
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="intervall"):
        jsonschema.validate(monitor, SCHEMAS["ServiceMonitor"])


def test_dashboard_panels_query_known_metrics(rendered: Rendered) -> None:
    dashboard = json.loads((rendered.root / "monitoring/dashboards/rag-service.json").read_text())
    known = known_series(rendered)
    titles = [p["title"] for p in dashboard["panels"]]
    for wanted in (
        "latency p50 / p95",
        "Time to first token",
        "Success rate",
        "Tokens per second",
        "KV cache usage",
        "Queue depth",
        "Cost per 1k tokens",
        "Token cost by hour",
    ):
        assert any(wanted in title for title in titles), wanted
    assert any(p["type"] == "heatmap" for p in dashboard["panels"])
    used: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, target["expr"]
            assert names <= known, f"{panel['title']}: {names - known}"
            used |= names
    assert {"vllm:kv_cache_usage_perc", "vllm:num_requests_waiting"} <= used


# --- promtool unit tests: the alerts fire when they should and stay quiet otherwise ---


def _without_annotations(rendered: Rendered, target: Path) -> Path:
    """Annotations are text for people (checked by promtool check rules); the unit tests
    compare labels, so drop them from a copy."""
    data = yaml.safe_load(rules_file(rendered).read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    target.write_text(yaml.safe_dump(data))
    return target


def _run_promtool_tests(
    rendered: Rendered, tmp_path: Path, tests: list[dict[str, Any]], evaluation: str = "1m"
) -> None:
    rules_copy = _without_annotations(rendered, tmp_path / "rules.yaml")
    spec = {"rule_files": [rules_copy.name], "evaluation_interval": evaluation, "tests": tests}
    test_file = tmp_path / "tests.yaml"
    test_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(
        ["promtool", "test", "rules", test_file.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _alert(name: str, service: str, **labels: str) -> dict[str, Any]:
    return {"exp_labels": {"service": service, **labels}}


def test_burn_rate_alerts_fire_on_errors_and_slowness(rendered: Rendered, tmp_path: Path) -> None:
    n = rendered.name
    api = f'namespace="{n}", job="{n}-rag-api"'
    le = repr(int(rendered.context.get("slo_p95_latency_ms", "2000")) / 1000)
    failing = {
        "interval": "1m",
        "input_series": [
            {"series": f'rag_requests_total{{{api}, outcome="error"}}', "values": "0+10x120"},
            {"series": f'rag_requests_total{{{api}, outcome="success"}}', "values": "0+0x120"},
            {"series": f'rag_requests_total{{{api}, outcome="refused"}}', "values": "0+50x120"},
            # Every request slower than the target.
            {
                "series": f'rag_request_latency_seconds_bucket{{{api}, le="{le}"}}',
                "values": "0x120",
            },
            {"series": f"rag_request_latency_seconds_count{{{api}}}", "values": "0+10x120"},
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "RagSuccessRateBudgetBurnFast",
                "exp_alerts": [_alert("", n, severity="page", slo="success-rate")],
            },
            {
                "eval_time": "20m",
                "alertname": "RagLatencyBudgetBurnFast",
                "exp_alerts": [_alert("", n, severity="page", slo="p95-latency")],
            },
        ],
    }
    healthy = {
        "interval": "1m",
        "input_series": [
            {"series": f'rag_requests_total{{{api}, outcome="success"}}', "values": "0+100x120"},
            # Invalid requests (422) are not the service's failures.
            {"series": f'rag_requests_total{{{api}, outcome="refused"}}', "values": "0+100x120"},
            {
                "series": f'rag_request_latency_seconds_bucket{{{api}, le="{le}"}}',
                "values": "0+100x120",
            },
            {"series": f"rag_request_latency_seconds_count{{{api}}}", "values": "0+100x120"},
        ],
        "alert_rule_test": [
            {"eval_time": "100m", "alertname": alert, "exp_alerts": []}
            for alert in (
                "RagSuccessRateBudgetBurnFast",
                "RagSuccessRateBudgetBurnSlow",
                "RagLatencyBudgetBurnFast",
                "RagLatencyBudgetBurnSlow",
            )
        ],
    }
    _run_promtool_tests(rendered, tmp_path, [failing, healthy])


def test_cost_alerts(rendered: Rendered, tmp_path: Path) -> None:
    n, context = rendered.name, rendered.context
    vllm = f'namespace="{n}", job="{n}-vllm"'
    price = float(context["gpu_hourly_usd"])  # the portal's price, from the price step
    per_replica_month = int(context["gpus"]) * price * 730
    budget = float(context.get("monthly_budget_usd", "1000"))
    # Enough replicas to go over budget, and whether one replica alone is over it.
    over = math.floor(budget / per_replica_month) + 1
    one_over = per_replica_month > budget

    def pods(count: int, values: str) -> list[dict[str, str]]:
        return [
            {"series": f'vllm:num_requests_running{{{vllm}, pod="vllm-{i}"}}', "values": values}
            for i in range(count)
        ]

    over_budget = {
        "interval": "1m",
        "input_series": pods(over, "0x180"),
        "alert_rule_test": [
            {
                "eval_time": "2h",
                "alertname": "RagProjectedSpendOverBudget",
                "exp_alerts": [_alert("", n, severity="ticket")],
            }
        ],
    }
    steady = {
        "interval": "1m",
        "input_series": pods(1, "0x180"),
        "alert_rule_test": [
            {
                "eval_time": "2h",
                "alertname": "RagProjectedSpendOverBudget",
                "exp_alerts": [_alert("", n, severity="ticket")] if one_over else [],
            }
        ],
    }
    # One replica for a day, then ten: spend per hour x10 overnight (5-minute samples).
    jump = {
        "interval": "5m",
        "input_series": pods(1, "0x312")
        + [
            {
                "series": f'vllm:num_requests_running{{{vllm}, pod="burst-{i}"}}',
                "values": "_x288 0x24",
            }
            for i in range(9)
        ],
        "alert_rule_test": [
            {
                "eval_time": "25h",
                "alertname": "RagHourlySpendTenfold",
                "exp_alerts": [_alert("", n, severity="page")],
            },
            {
                "eval_time": "25h",
                "alertname": "RagHourlySpendJump",
                "exp_alerts": [_alert("", n, severity="ticket")],
            },
            {"eval_time": "23h", "alertname": "RagHourlySpendTenfold", "exp_alerts": []},
        ],
    }
    # Cost moves by the hour: a 5-minute evaluation keeps a simulated day quick.
    _run_promtool_tests(rendered, tmp_path, [over_budget, steady, jump], evaluation="5m")
