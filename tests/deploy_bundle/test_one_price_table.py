"""One price table: the portal's. The generated Prometheus cost rules (and the Grafana
dashboard, which reads their series) price GPUs exactly as the portal's cost model prices
the same rendered Deployment, for every GPU class on the form, with the price table an
admin set; a price change reaches the next render."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from portal_backend.db import session_scope
from portal_backend.rag.gpu_classes import GPU_CLASSES
from portal_backend.rag.sizing import size_deployment
from portal_backend.scaffolder.actions.base import ActionContext
from portal_backend.scaffolder.actions.rag_prices import RagGpuPriceAction
from portal_backend.sla import costs
from portal_backend.sla.resources import desired_rate
from tests.deploy_bundle.conftest import render as kustomize
from tests.rag_template.conftest import render
from tests.rag_template.template_flow import cookiecutter_values, load_template

FORM_GPUS = next(
    page["properties"]["gpu_class"]["enum"]
    for page in load_template()["spec"]["parameters"]
    if "gpu_class" in page.get("properties", {})
)
# An admin's table: every GPU price moved off its default, so a default cannot pass.
ADMIN_PRICES = {
    **costs.DEFAULT_PRICES,
    **{
        c.price_item: round(c.default_usd_per_gpu_hour * 1.37 + 0.11, 2)
        for c in GPU_CLASSES.values()
    },
}


def test_the_form_offers_exactly_the_gpu_classes_the_portal_prices() -> None:
    assert FORM_GPUS == list(GPU_CLASSES)
    for gpu in FORM_GPUS:
        item, usd = costs.gpu_class_price(costs.DEFAULT_PRICES, gpu)
        assert item == GPU_CLASSES[gpu].price_item != "gpu:default", gpu
        assert usd == GPU_CLASSES[gpu].default_usd_per_gpu_hour > 0
    assert len({c.price_item for c in GPU_CLASSES.values()}) == len(GPU_CLASSES)


def _model_for(gpu: str) -> str:
    return next(
        m
        for m in ("llama-3-8b-instruct", "llama-3-70b-instruct")
        if size_deployment(m, "awq", gpu).fits
    )


@pytest.mark.parametrize("gpu", FORM_GPUS)
def test_rules_price_gpus_as_the_portal_does(tmp_path: Path, gpu: str) -> None:
    values = cookiecutter_values(
        {
            "name": "price-check",
            "owner": "group:default/team-a",
            "model": _model_for(gpu),
            "quantization": "awq",
            "gpu_class": gpu,
        },
        tmp_path,
        prices=ADMIN_PRICES,
    )
    repo = render(tmp_path / "out", values)
    objects = kustomize(repo / "deploy" / "k8s" / "overlays" / "prod")
    vllm = next(
        o
        for o in objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "price-check-vllm"
    )
    # The portal's cost model over the rendered vLLM Deployment, one replica.
    one = {**vllm, "spec": {**vllm["spec"], "replicas": 1}}
    portal = desired_rate([one], [], ADMIN_PRICES, None)
    assert portal.gpu_classes[0]["priceItem"] == GPU_CLASSES[gpu].price_item
    portal_per_gpu = portal.gpu / portal.gpus
    assert portal_per_gpu == ADMIN_PRICES[GPU_CLASSES[gpu].price_item]
    # The generated rules, evaluated by promtool for one running vLLM replica.
    rules = yaml.safe_load((repo / "monitoring" / "prometheus-rules.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    series = 'vllm:num_requests_running{namespace="price-check", job="price-check-vllm", pod="v-0"}'
    expected: dict[str, Any] = {
        "expr": 'rag:gpu_cost_usd:per_hour{service="price-check"}',
        "eval_time": "5m",
        "exp_samples": [
            {"labels": 'rag:gpu_cost_usd:per_hour{service="price-check"}', "value": portal.gpu}
        ],
    }
    spec = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": "0x10"}],
                "promql_expr_test": [expected],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = subprocess.run(
        ["promtool", "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The dashboard's spend panel says which price it shows.
    dashboard = (repo / "monitoring" / "dashboards" / "rag-service.json").read_text()
    assert f"GPUs priced at {portal_per_gpu} USD/GPU-hour" in dashboard


def test_rendered_without_a_price_the_cost_rules_are_left_out(tmp_path: Path) -> None:
    """Outside the portal (plain cookiecutter) there is no price table to read: no cost
    series rather than a made-up price."""
    values = cookiecutter_values({"name": "no-price", "owner": "group:default/team-a"}, tmp_path)
    repo = render(tmp_path / "out", {**values, "gpu_hourly_usd": "", "gpu_price_item": ""})
    text = (repo / "monitoring" / "prometheus-rules.yaml").read_text()
    assert "rag:gpu_cost_usd:per_hour" not in text and "no cost rules" in text
    check = subprocess.run(
        ["promtool", "check", "rules", str(repo / "monitoring" / "prometheus-rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_price_step_reads_the_admin_table(settings, session_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctx = ActionContext(
        task_id="t",
        step_id="price",
        workspace=tmp_path,
        settings=settings,
        session_factory=session_factory,
        user_ref="user:default/alice",
        log=lambda _: None,
    )
    action = RagGpuPriceAction()
    assert action.run(ctx, {"gpu": "H200"})["usd_per_gpu_hour"] == 6.00  # the defaults
    with session_scope(session_factory) as session:
        costs.set_prices(
            session, {"gpu:nvidia-h200": 7.25, "gpu:default": 3.0}, datetime.now(UTC), "admin"
        )
    assert action.run(ctx, {"gpu": "H200"}) == {
        "gpu": "H200",
        "price_item": "gpu:nvidia-h200",
        "usd_per_gpu_hour": 7.25,
    }
    # A class the admin table does not name falls to its default item, as the cost model does.
    assert action.run(ctx, {"gpu": "L4"})["price_item"] == "gpu:default"
    assert action.precheck({"gpu": "T4"}, settings)[0].path == "parameters.gpu_class"
