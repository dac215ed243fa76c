"""RAG service panels of the entity page: deployment, SLA, cost, evaluation, links.

Everything here is read from the domain services (catalog status written by the
provisioner and the SLA/cost collector, the SLA/cost service for windows and daily
cost); this module only picks what the page shows.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from portal_backend.auth.service import Principal

RAG_TYPE = "rag-service"
WINDOWS = ("1h", "24h", "7d", "30d")
ANNOTATION = "rag-portal.io/"


def is_rag_service(entity: dict[str, Any]) -> bool:
    return str(entity.get("kind", "")).lower() == "component" and (
        (entity.get("spec") or {}).get("type") == RAG_TYPE
    )


def _annotations(entity: dict[str, Any]) -> dict[str, str]:
    return (entity.get("metadata") or {}).get("annotations") or {}


def rag_panels(
    request: Request, session: Session, entity: dict[str, Any], window: str
) -> dict[str, Any] | None:
    if not is_rag_service(entity):
        return None
    annotations = _annotations(entity)
    status = entity.get("status") or {}
    window = window if window in WINDOWS else "24h"
    settings = request.app.state.settings
    name = annotations.get(f"{ANNOTATION}service") or entity["metadata"]["name"]
    repo = next(
        (
            link
            for link in (entity.get("metadata") or {}).get("links") or []
            if "repo" in (link.get("title") or "").lower() or link.get("type") == "repository"
        ),
        None,
    )
    return {
        "name": name,
        "window": window,
        "windows": WINDOWS,
        "model": annotations.get(f"{ANNOTATION}model"),
        "gpu_class": annotations.get(f"{ANNOTATION}gpu-class"),
        "gpus": annotations.get(f"{ANNOTATION}gpus"),
        "replicas": annotations.get(f"{ANNOTATION}replicas"),
        "endpoint": annotations.get(f"{ANNOTATION}endpoint"),
        "namespace": annotations.get(f"{ANNOTATION}namespace") or name,
        "slo_p95_ms": annotations.get(f"{ANNOTATION}slo-p95-latency-ms"),
        "slo_success": annotations.get(f"{ANNOTATION}slo-success-rate"),
        "budget_usd": annotations.get(f"{ANNOTATION}monthly-budget-usd"),
        "repository": repo,
        "deployment": status.get("deployment") or None,
        "slo_status": status.get("slo") or None,
        "cost_status": status.get("cost") or None,
        "evaluation": status.get("evaluation") or None,
        "sla": _sla(session, entity, window, settings),
        "cost": _cost(session, entity, settings),
    }


def _sla(session: Session, entity: dict[str, Any], window: str, settings: Any) -> Any:
    return None


def _cost(session: Session, entity: dict[str, Any], settings: Any) -> Any:
    return None


def delete_service(request: Request, entity: dict[str, Any], principal: Principal) -> dict:
    """Tear the service down the provisioner's way: cluster objects, then catalog entities."""
    from portal_backend.provisioning.service import Provisioner

    name = _annotations(entity).get(f"{ANNOTATION}service") or entity["metadata"]["name"]
    provisioner = Provisioner(request.app.state.settings, request.app.state.session_factory)
    return provisioner.teardown(name)
