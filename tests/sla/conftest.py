"""SLA test helpers: RAG service entities in the real catalog, synthetic usage, clocks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest

from catalog.service import CatalogService
from portal_backend.db import session_scope
from portal_backend.sla import ingest, services
from portal_backend.sla.tables import SlaService

T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)  # a fixed "now" for clock-driven tests


def rag_service(
    name: str,
    *,
    owner: str = "team-a",
    success_rate: str = "95",
    p95_ms: str = "2000",
    budget: str = "1000",
    gpu_class: str = "nvidia-l4",
    gpus: str = "1",
    replicas: str = "2",
    deployment: str | None = "Healthy",
) -> dict:
    """A rag-service Component; ``deployment`` is its ``status.deployment.state`` (None:
    never deployed, as when imported from YAML)."""
    status = {"status": {"deployment": {"state": deployment}}} if deployment else {}
    return {
        **status,
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": name,
            "annotations": {
                "backstage.io/kubernetes-id": name,
                "rag-portal.io/service": name,
                "rag-portal.io/namespace": name,
                "rag-portal.io/slo-success-rate": success_rate,
                "rag-portal.io/slo-p95-latency-ms": p95_ms,
                "rag-portal.io/monthly-budget-usd": budget,
                "rag-portal.io/gpu-class": gpu_class,
                "rag-portal.io/gpus": gpus,
                "rag-portal.io/replicas": replicas,
            },
        },
        "spec": {"type": "rag-service", "lifecycle": "production", "owner": owner},
    }


def register(factory, *entities: dict, now: datetime = T0) -> list[str]:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        CatalogService(session).upsert_entities(list(entities))
        return services.sync_from_catalog(session, now)


def get_service(factory, ref: str) -> SlaService:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        service = session.get(SlaService, ref)
        assert service is not None
        session.expunge(service)
        return service


def records(
    service: str,
    start: datetime,
    seconds: float,
    count: int,
    *,
    error_ratio: float = 0.0,
    latency: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> list[dict[str, Any]]:
    """``count`` usage records spread evenly over ``seconds`` from ``start``."""
    rng = rng or np.random.default_rng(7)
    lat = latency if latency is not None else rng.lognormal(6.5, 0.5, count)
    bad = rng.random(count) < error_ratio
    out = []
    for i in range(count):
        ts = start + timedelta(seconds=seconds * i / count)
        out.append(
            {
                "service": service,
                "timestamp": ts.isoformat(),
                "latency_ms": float(lat[i]),
                "ttft_ms": float(lat[i]) / 4,
                "prompt_tokens": 200,
                "completion_tokens": 50,
                "outcome": "error" if bad[i] else "success",
                "model": "llama-3-8b",
            }
        )
    return out


def push(factory, recs: list[dict], now: datetime, batch_id: str | None = None):  # type: ignore[no-untyped-def]
    """Ingests records directly through the domain function (no HTTP)."""
    body = orjson.dumps({"batch_id": batch_id or uuid.uuid4().hex, "records": recs})
    batch = ingest.parse_batch(body)
    with session_scope(factory) as session:
        return ingest.ingest_batch(session, batch, now=now)


@pytest.fixture
def svc(session_factory) -> str:  # type: ignore[no-untyped-def]
    return register(session_factory, rag_service("support-bot"))[0]


def push_minutes(
    factory,  # type: ignore[no-untyped-def]
    ref: str,
    start: datetime,
    minutes: int,
    per_minute: int,
    errors_per_minute: int = 0,
    latency_ms: float = 100.0,
) -> None:
    """A synthetic steady series: ``per_minute`` requests each minute, the first
    ``errors_per_minute`` of them failing; folded and upserted by the real rollup code."""
    from portal_backend.sla import rollups

    chunk = 360
    for offset in range(0, minutes, chunk):
        count = min(chunk, minutes - offset)
        n = count * per_minute
        base = start.timestamp() + offset * 60
        index = np.arange(n)
        ts = base + (index // per_minute) * 60 + (index % per_minute) * (60 / per_minute)
        outcome = np.where(index % per_minute < errors_per_minute, 1, 0)
        deltas = rollups.fold(
            np.zeros(n, dtype=np.int64),
            [ref],
            ts.astype(np.float64),
            np.full(n, latency_ms),
            np.full(n, latency_ms / 4),
            np.full(n, 100.0),
            np.full(n, 20.0),
            outcome.astype(np.int64),
            "push",
        )
        with session_scope(factory) as session:
            rollups.apply_deltas(session, deltas)
