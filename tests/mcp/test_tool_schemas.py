"""Every MCP tool's input schema is the REST API's own: the same fields, with the same
types, constraints and defaults, as the routes' OpenAPI description says they take."""

from __future__ import annotations

from typing import Any

import pytest

from portal_backend.app import create_app
from portal_backend.mcp.tools import TOOLS, Tool
from tests.conftest import make_settings

# What a property means, not how it is labelled: FastAPI titles a query parameter after
# the parameter and moves its description up a level; the rest must be identical.
LABELS = ("title", "description")


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(make_settings("sqlite", tmp_path_factory.mktemp("schemas"), None))
    return app.openapi()


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    """A schema with its $refs (OpenAPI components or pydantic $defs) replaced inline."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            found = document.get("components", {}).get("schemas", {}).get(name)
            found = found or document.get("$defs", {}).get(name)
            return _resolve(found, document)
        return {
            k: _resolve(v, document)
            for k, v in schema.items()
            # OpenAPI's serialiser drops null values: a default of None is no default there
            if k not in LABELS and not (k == "default" and v is None)
        }
    if isinstance(schema, list):
        return [_resolve(v, document) for v in schema]
    return schema


def _operation(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    assert path in openapi["paths"], f"{path} is not a route of the portal"
    return openapi["paths"][path][method.lower()]


def _rest_fields(openapi: dict[str, Any], source: Any) -> dict[str, dict[str, Any]]:
    """Each field of one part of a route's input, as its OpenAPI description has it."""
    operation = _operation(openapi, source.method, source.path)
    if source.part == "body":
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        body = _resolve(schema, openapi)
        return {
            name: {**prop, "required": name in body.get("required", [])}
            for name, prop in body["properties"].items()
        }
    return {
        p["name"]: {**_resolve(p["schema"], openapi), "required": p.get("required", False)}
        for p in operation.get("parameters", [])
        if p["in"] == source.part
    }


@pytest.mark.parametrize("tool", [t for t in TOOLS if t.rest], ids=lambda t: t.name)
def test_tool_input_is_the_routes_input(openapi: dict[str, Any], tool: Tool) -> None:
    schema = tool.input_schema()
    properties = _resolve(schema, schema)["properties"]
    required = set(schema.get("required", []))
    for source in tool.rest:
        rest = _rest_fields(openapi, source)
        names = source.fields or tuple(rest)
        assert set(names) <= set(rest), f"{source.path} has no {set(names) - set(rest)}"
        if not source.fields:  # the whole model: no field of the route is missing
            assert set(rest) <= set(properties), (tool.name, source.path)
        for name in names:
            want = dict(rest[name])
            is_required = want.pop("required")
            if source.part == "path":
                # A path segment is a string; the tool may give it a default (namespace).
                assert properties[name].get("type") == "string", (tool.name, name)
                continue
            assert properties[name] == want, (tool.name, name, properties[name], want)
            assert (name in required) == is_required, (tool.name, name)


def test_the_routes_use_the_shared_models() -> None:
    """The route handlers take the very classes the tools are built from."""
    import inspect

    from catalog.api_models import EntityQueryParams
    from portal_backend.rag.api_models import AskBody
    from portal_backend.routers import catalog, rag_services, scaffolder, sla
    from portal_backend.scaffolder.api_models import DryRun, TaskCreate, TaskEventsQuery
    from portal_backend.sla.api_models import CostQuery, ServiceReportQuery

    def annotations(function: Any) -> str:
        return " ".join(str(p.annotation) for p in inspect.signature(function).parameters.values())

    assert "EntityQueryParams" in annotations(catalog.get_entities_by_query)
    assert "TaskCreate" in annotations(scaffolder.create_task)
    assert "DryRun" in annotations(scaffolder.dry_run)
    assert "TaskEventsQuery" in annotations(scaffolder.get_events)
    assert "AskBody" in annotations(rag_services.ask_service)
    assert "ServiceReportQuery" in annotations(sla.service_status)
    assert "CostQuery" in annotations(sla.cost_summary)
    # and those names are the shared classes, not local look-alikes
    assert catalog.EntityQueryParams is EntityQueryParams
    assert scaffolder.TaskCreate is TaskCreate and scaffolder.DryRun is DryRun
    assert scaffolder.TaskEventsQuery is TaskEventsQuery
    assert rag_services.AskBody is AskBody
    assert sla.ServiceReportQuery is ServiceReportQuery and sla.CostQuery is CostQuery


def test_every_tool_has_an_object_schema_and_a_description() -> None:
    for tool in TOOLS:
        schema = tool.input_schema()
        assert schema["type"] == "object", tool.name
        assert tool.description and tool.title, tool.name
