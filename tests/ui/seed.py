"""Catalog data for the browser tests, written through the catalog's own service."""

from __future__ import annotations

from typing import Any

from catalog.service import CatalogService
from portal_backend.db import session_scope


def component(name: str, **spec: Any) -> dict[str, Any]:
    meta = spec.pop("metadata", {})
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name, **meta},
        "spec": {"lifecycle": "production", "owner": "team-a", "type": "service", **spec},
    }


def rag_service(name: str, owner: str = "team-a", **annotations: str) -> list[dict[str, Any]]:
    values = {
        "backstage.io/kubernetes-id": name,
        "backstage.io/source-template": "template:default/rag-service",
        "rag-portal.io/service": name,
        "rag-portal.io/slo-p95-latency-ms": "2000",
        "rag-portal.io/slo-success-rate": "95",
        "rag-portal.io/monthly-budget-usd": "1000",
        "rag-portal.io/model": "llama-3-8b-instruct",
        "rag-portal.io/gpu-class": "L4",
        "rag-portal.io/gpus": "1",
        "rag-portal.io/replicas": "1",
        "rag-portal.io/endpoint": f"http://{name}.example.test",
        "rag-portal.io/namespace": name,
        **annotations,
    }
    resource = {"apiVersion": "backstage.io/v1alpha1", "kind": "Resource"}
    return [
        component(
            name,
            type="rag-service",
            owner=owner,
            dependsOn=[f"resource:{name}-model-server", f"resource:{name}-vector-collection"],
            providesApis=[f"{name}-api"],
            metadata={
                "description": f"Assistant {name}",
                "annotations": values,
                "tags": ["rag", "llama"],
                "links": [{"url": f"file:///repos/{name}.git", "title": "Repository"}],
            },
        ),
        {
            **resource,
            "metadata": {"name": f"{name}-model-server"},
            "spec": {"type": "model-server", "owner": owner},
        },
        {
            **resource,
            "metadata": {"name": f"{name}-vector-collection"},
            "spec": {"type": "vector-collection", "owner": owner},
        },
        {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "API",
            "metadata": {"name": f"{name}-api"},
            "spec": {
                "type": "openapi",
                "owner": owner,
                "lifecycle": "production",
                "definition": "openapi: 3.0.0",
            },
        },
    ]


def groups() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Group",
            "metadata": {"name": g},
            "spec": {"type": "team", "children": []},
        }
        for g in ("team-a", "team-b")
    ]


def seed(session_factory: Any, entities: list[dict[str, Any]]) -> None:
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities(entities)


def set_status(session_factory: Any, ref: str, section: str, value: dict[str, Any]) -> None:
    with session_scope(session_factory) as session:
        CatalogService(session).set_status(ref, section, value)
