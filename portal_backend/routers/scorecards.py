"""Scorecards API, base ``/api/scorecards``: the checks (read; replaced by admins), each
service's scorecard and history, the team and fleet views, a run now.

Thin: the work is in portal_backend.scorecards.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from catalog.errors import ErrorDetail, InputError
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.deps import AdminPrincipal, ReadPrincipal
from portal_backend.scorecards import definitions, service
from portal_backend.scorecards.definitions import ActiveSet
from portal_backend.sla.clock import utcnow

router = APIRouter(prefix="/api/scorecards", tags=["scorecards"])
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")
CHECKS_BODY = {
    "requestBody": {
        "required": True,
        "description": "the check set: levels and checks (docs/scorecards.md)",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": definitions.CheckSet.model_json_schema()},
        },
    }
}


def _set_view(active: ActiveSet) -> dict[str, Any]:
    return {
        "source": active.source,
        "updatedAt": active.updated_at.isoformat() if active.updated_at else None,
        "updatedBy": active.updated_by,
        "digest": active.checks.digest(),
        **active.checks.model_dump(mode="json"),
        "yaml": active.text,
    }


@router.get("/checks")
def get_checks(request: Request, _: Principal = ReadPrincipal) -> dict[str, Any]:
    """The checks in force and where they come from (``admin`` or the file's path)."""
    with session_scope(request.app.state.session_factory) as session:
        return _set_view(definitions.active(session, request.app.state.settings))


def _body_text(body: bytes, content_type: str) -> str:
    if content_type.startswith("application/json"):
        try:
            data = json.loads(body or b"null")
        except ValueError:
            raise InputError("the body is not valid JSON", [ErrorDetail("body", "JSON")]) from None
        definitions.from_data(data, source="the request body")  # 400 naming the field
        return str(yaml.safe_dump(data, sort_keys=False))
    if content_type and not content_type.startswith(YAML_TYPES):
        raise InputError(
            f"send the checks as YAML (Content-Type: application/yaml) or JSON, not {content_type}",
            [ErrorDetail("Content-Type", "application/yaml or application/json")],
        )
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise InputError("the body is not UTF-8 text", [ErrorDetail("body", "UTF-8")]) from None


@router.put("/checks", openapi_extra=CHECKS_BODY)
async def put_checks(request: Request, principal: Principal = AdminPrincipal) -> dict[str, Any]:
    """Replace the check set (admin). Nothing changes when it is invalid: 400 naming
    every bad field (``checks[2].threshold``). Scorecards use it from the next run."""
    text = _body_text(await request.body(), request.headers.get("content-type", ""))

    def store() -> dict[str, Any]:
        with session_scope(request.app.state.session_factory) as session:
            return _set_view(definitions.replace(session, text, utcnow(), principal.subject))

    return await run_in_threadpool(store)


@router.delete("/checks", status_code=204)
def reset_checks(request: Request, _: Principal = AdminPrincipal) -> None:
    """Back to the checks file (RAGPORTAL_SCORECARD_CHECKS_FILE, or the shipped one)."""
    with session_scope(request.app.state.session_factory) as session:
        definitions.reset(session)


@router.post("/run")
def run_now(request: Request, _: Principal = AdminPrincipal) -> dict[str, Any]:
    """Compute every service's scorecard now instead of at the next beat."""
    return service.run(request.app.state.settings, request.app.state.session_factory, utcnow())


@router.get("/services")
def fleet(
    request: Request,
    owner: str | None = Query(None, description="an owner group, e.g. group:default/team-a"),
    level: str | None = Query(None, description="only services at this level (or none)"),
    _: Principal = ReadPrincipal,
) -> dict[str, Any]:
    """Every scored service, worst first, and a summary per owner team (worst first)."""
    with session_scope(request.app.state.session_factory) as session:
        return service.fleet(session, request.app.state.settings, owner=owner, level=level)


@router.get("/services/{kind}/{namespace}/{name}")
def service_scorecard(
    kind: str, namespace: str, name: str, request: Request, _: Principal = ReadPrincipal
) -> dict[str, Any]:
    """The service's latest scorecard: each check's state, value and why; its level."""
    with session_scope(request.app.state.session_factory) as session:
        return service.current(session, f"{kind}:{namespace}/{name}")


@router.get("/services/{kind}/{namespace}/{name}/history")
def service_history(
    kind: str,
    namespace: str,
    name: str,
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    _: Principal = ReadPrincipal,
) -> Response:
    with session_scope(request.app.state.session_factory) as session:
        answer = service.history(session, f"{kind}:{namespace}/{name}", limit)
    return Response(json.dumps(answer), media_type="application/json")
