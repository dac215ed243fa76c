"""Cost from the desired state provisioning applied: CPU, memory, GPU and storage requests
x replicas (live when the reconciler saw them), and the GPU-only fallback without one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from portal_backend.db import session_scope
from portal_backend.provisioning.models import ProvisionedService
from portal_backend.sla import costs, reports
from portal_backend.sla.resources import quantity
from portal_backend.sla.tables import SlaService
from tests.sla.conftest import rag_service, register

NOV1 = datetime(2026, 11, 1, tzinfo=UTC)


def _container(name: str, requests: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "image": "x", "resources": {"requests": requests}}


def _workload(kind: str, name: str, containers: list, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "bot"},
        "spec": {**spec, "template": {"spec": {"containers": containers}}},
    }


def desired_bundle() -> list[dict[str, Any]]:
    gpu = {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    claim = {"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "73Gi"}}}}
    return [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}},
        _workload(
            "Deployment",
            "vllm",
            [_container("vllm", gpu), _container("proxy", {"cpu": "500m", "memory": "512Mi"})],
            replicas=2,
        ),
        _workload(
            "StatefulSet",
            "qdrant",
            [_container("qdrant", {"cpu": "1", "memory": "2Gi"})],
            replicas=3,
            volumeClaimTemplates=[claim],
        ),
        # spec.replicas released to the HPA (as rag:provision applies it).
        _workload("Deployment", "api", [_container("api", {"cpu": "250m", "memory": "1Gi"})]),
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "api"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                "minReplicas": 2,
                "maxReplicas": 6,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "models"},
            "spec": {"resources": {"requests": {"storage": "146Gi"}}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "ingest"},
            "spec": {"template": {"spec": {"containers": [_container("i", {"cpu": "8"})]}}},
        },
    ]


def _record(factory, detail: list[dict[str, Any]] | None = None) -> None:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        session.merge(
            ProvisionedService(
                service="bot",
                namespace="bot",
                cluster="prod",
                entity_ref="component:default/bot",
                desired=desired_bundle(),
                state="Healthy",
                detail=detail or [],
                created_at=NOV1,
                updated_at=NOV1,
            )
        )


def _accrue_hours(factory, start: datetime, hours: int) -> None:  # type: ignore[no-untyped-def]
    for at in (start, start + timedelta(hours=hours)):
        with session_scope(factory) as session:
            costs.accrue(session, list(session.scalars(select(SlaService))), at)


def _report_rate(factory, now: datetime) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session:
        service = session.get(SlaService, "component:default/bot")
        return reports.service_report(session, service, "1h", now)["cost"]["rate"]


def test_quantity_parses_kubernetes_units() -> None:
    assert quantity("500m") == 0.5
    assert quantity("1Ki") == 1024
    assert quantity("16Gi") == 16 * 2**30
    assert quantity("1Ti") == 2**40
    assert quantity("2k") == 2000
    assert quantity("1.5G") == 1.5e9
    assert quantity("3") == 3
    assert quantity(4) == 4
    assert quantity(None) == 0


def test_desired_state_prices_every_resource(session_factory) -> None:  # type: ignore[no-untyped-def]
    # Annotations alone would say 1 L4 x 2 replicas = $1.60/h; the desired state adds the rest.
    register(session_factory, rag_service("bot", gpus="1", replicas="2"), now=NOV1)
    _record(session_factory)
    # Default prices: L4 $0.80/GPU-h, $0.04/core-h, $0.005/GiB-h, $0.10/GiB-month.
    # vllm 2 x (1 GPU, 4.5 cores, 16.5 GiB): gpu 1.60, cpu 0.36, memory 0.165
    # qdrant 3 x (1 core, 2 GiB, 73 GiB claim): cpu 0.12, memory 0.03, storage 0.03
    # api HPA minReplicas 2 x (0.25 core, 1 GiB): cpu 0.02, memory 0.01
    # PVC models 146 GiB: storage 0.02; the Job and the Secret cost nothing here.
    expected = {"gpu": 1.60, "cpu": 0.50, "memory": 0.205, "storage": 0.05}
    rate = _report_rate(session_factory, NOV1)
    assert rate["model"] == "provisioned"
    assert rate["gpus"] == 2
    for resource, usd in expected.items():
        assert rate[f"{resource}UsdPerHour"] == pytest.approx(usd)
    assert rate["totalUsdPerHour"] == pytest.approx(2.355)

    _accrue_hours(session_factory, NOV1, 10)
    with session_scope(session_factory) as session:
        figures = costs.month_figures(session, "component:default/bot", NOV1 + timedelta(hours=10))
    assert figures["mtdUsd"] == pytest.approx(23.55)
    assert figures["hourlyRateUsd"] == pytest.approx(2.355)


def test_live_replica_counts_change_the_rate(session_factory) -> None:  # type: ignore[no-untyped-def]
    register(session_factory, rag_service("bot"), now=NOV1)
    # The reconciler saw vllm at 1 replica and the autoscaler had api at 4.
    _record(
        session_factory,
        detail=[
            {"kind": "Deployment", "name": "vllm", "state": "Progressing", "replicas": 1},
            {"kind": "Deployment", "name": "api", "state": "Ready", "replicas": 4},
        ],
    )
    rate = _report_rate(session_factory, NOV1)
    # vllm 1 x: gpu 0.80, cpu 0.18, memory 0.0825; qdrant as desired; api 4 x: 0.04, 0.02
    assert rate["gpuUsdPerHour"] == pytest.approx(0.80)
    assert rate["cpuUsdPerHour"] == pytest.approx(0.34)
    assert rate["memoryUsdPerHour"] == pytest.approx(0.1325)
    assert rate["storageUsdPerHour"] == pytest.approx(0.05)
    assert rate["totalUsdPerHour"] == pytest.approx(1.3225)

    _accrue_hours(session_factory, NOV1, 4)
    with session_scope(session_factory) as session:
        assert costs.spend(
            session,
            "component:default/bot",
            NOV1.timestamp(),
            (NOV1 + timedelta(hours=4)).timestamp(),
        ) == pytest.approx(4 * 1.3225)


def test_without_provisioning_record_gpu_only_model(session_factory) -> None:  # type: ignore[no-untyped-def]
    register(session_factory, rag_service("bot", gpus="2", replicas="3"), now=NOV1)
    rate = _report_rate(session_factory, NOV1)
    # 2 L4 x 3 replicas x $0.80 = $4.80/h; nothing else is priced.
    assert rate == {
        "model": "annotations",
        "gpuUsdPerHour": 4.8,
        "cpuUsdPerHour": 0.0,
        "memoryUsdPerHour": 0.0,
        "storageUsdPerHour": 0.0,
        "totalUsdPerHour": 4.8,
        "gpus": 6.0,
    }
    _accrue_hours(session_factory, NOV1, 2)
    with session_scope(session_factory) as session:
        figures = costs.month_figures(session, "component:default/bot", NOV1 + timedelta(hours=2))
    assert figures["mtdUsd"] == pytest.approx(9.6)
