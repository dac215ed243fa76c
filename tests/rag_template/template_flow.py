"""The rag-service template's own data flow, without the scaffolder engine: form
defaults and validation from template.yaml, the real rag:sizing action, and the step
inputs rendered with the engine's expression evaluator."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

from portal_backend.scaffolder.actions.base import ActionContext
from portal_backend.scaffolder.actions.rag_prices import price_output
from portal_backend.scaffolder.actions.rag_sizing import RagSizingAction
from portal_backend.scaffolder.expressions import render_value
from portal_backend.settings import Settings
from portal_backend.sla.costs import DEFAULT_PRICES
from tests.rag_template.conftest import TEMPLATE_DIR


def load_template() -> dict[str, Any]:
    return yaml.safe_load((TEMPLATE_DIR / "template.yaml").read_text())


def _strip_ui(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_ui(v) for k, v in schema.items() if not str(k).startswith("ui:")}
    if isinstance(schema, list):
        return [_strip_ui(v) for v in schema]
    return schema


def form_errors(parameters: dict[str, Any]) -> list[str]:
    errors = []
    for page in load_template()["spec"]["parameters"]:
        for error in Draft7Validator(_strip_ui(page)).iter_errors(parameters):
            errors.append(f"{'.'.join(map(str, error.absolute_path))}: {error.message}")
    return errors


def with_defaults(parameters: dict[str, Any]) -> dict[str, Any]:
    filled = copy.deepcopy(parameters)
    for page in load_template()["spec"]["parameters"]:
        for key, prop in page.get("properties", {}).items():
            if key not in filled and "default" in prop:
                filled[key] = copy.deepcopy(prop["default"])
    return filled


def step(template: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in template["spec"]["steps"] if s["id"] == step_id)


def cookiecutter_values(
    parameters: dict[str, Any],
    workspace: Path,
    *,
    prices: dict[str, float] | None = None,
    portal_url: str = "http://rag-portal.test",
) -> dict[str, Any]:
    """What the fetch step hands to cookiecutter for these form answers, with the
    portal's price table ``prices`` (default: the portal's defaults)."""
    template = load_template()
    params = with_defaults(parameters)
    assert form_errors(params) == []
    context: dict[str, Any] = {"parameters": params, "steps": {}, "user": {"ref": "user:t"}}
    sizing_input = render_value(step(template, "sizing")["input"], context)
    ctx = ActionContext(
        task_id="t",
        step_id="sizing",
        workspace=workspace,
        settings=Settings(),
        session_factory=None,  # type: ignore[arg-type]  # rag:sizing touches no database
        user_ref="user:t",
        log=lambda _: None,
    )
    context["steps"]["sizing"] = {"output": RagSizingAction().run(ctx, sizing_input)}
    # rag:gpu-price reads the portal's table from its database; here the table is given.
    gpu = render_value(step(template, "price")["input"], context)["gpu"]
    context["steps"]["price"] = {"output": price_output(prices or DEFAULT_PRICES, gpu)}
    # rag:catalog-versions reads the catalog; these renders have no catalog to name.
    context["steps"]["versions"] = {"output": {"refs": []}}
    context["portal"] = {"url": portal_url, "imageRegistry": ""}
    return render_value(step(template, "fetch")["input"]["values"], context)
