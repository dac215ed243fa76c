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
from portal_backend.sla.resources import gpu_price, quantity
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
    # The manifests name no GPU class: the entity's annotation prices the GPUs.
    assert rate["gpuClasses"] == [
        {"gpuClass": "nvidia-l4", "priceItem": "gpu:nvidia-l4", "source": "annotation", "gpus": 2}
    ]

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
        "localRuntimeUsdPerHour": 0.0,
        "totalUsdPerHour": 4.8,
        "gpus": 6.0,
        "gpuClasses": [
            {
                "gpuClass": "nvidia-l4",
                "priceItem": "gpu:nvidia-l4",
                "source": "annotation",
                "gpus": 6.0,
            }
        ],
    }
    _accrue_hours(session_factory, NOV1, 2)
    with session_scope(session_factory) as session:
        figures = costs.month_figures(session, "component:default/bot", NOV1 + timedelta(hours=2))
    assert figures["mtdUsd"] == pytest.approx(9.6)


def _with_gpu_class(bundle: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    vllm = next(o for o in bundle if o["metadata"]["name"] == "vllm")
    if "selector" in where:
        vllm["spec"]["template"]["spec"]["nodeSelector"] = where["selector"]
    if "annotation" in where:
        vllm["metadata"]["annotations"] = {"rag-portal.io/gpu-class": where["annotation"]}
    return bundle


@pytest.mark.parametrize(
    ("where", "gpu_class", "item", "usd_per_gpu"),
    [
        # The node selector the pods were scheduled with wins over every annotation.
        (
            {"selector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "annotation": "L4"},
            "NVIDIA-H100-80GB-HBM3",
            "gpu:nvidia-h100",
            4.50,
        ),
        (
            {"selector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"}},
            "nvidia-tesla-a100",
            "gpu:nvidia-a100",
            3.00,
        ),
        # No selector: the class rendered on the workload (the template writes "A100-80GB").
        ({"annotation": "A100-80GB"}, "A100-80GB", "gpu:nvidia-a100-80gb", 3.70),
    ],
)
def test_gpu_class_from_what_provisioning_applied(  # type: ignore[no-untyped-def]
    session_factory, where, gpu_class, item, usd_per_gpu
) -> None:
    # The entity still says nvidia-l4 ($0.80): the applied manifest decides.
    register(session_factory, rag_service("bot", gpus="1", replicas="2"), now=NOV1)
    with session_scope(session_factory) as session:
        session.merge(
            ProvisionedService(
                service="bot",
                namespace="bot",
                cluster="prod",
                entity_ref="component:default/bot",
                desired=_with_gpu_class(desired_bundle(), **where),
                state="Healthy",
                detail=[],
                created_at=NOV1,
                updated_at=NOV1,
            )
        )
    rate = _report_rate(session_factory, NOV1)
    assert rate["gpuClasses"] == [
        {"gpuClass": gpu_class, "priceItem": item, "source": "provisioned", "gpus": 2}
    ]
    assert rate["gpuUsdPerHour"] == pytest.approx(2 * usd_per_gpu)
    _accrue_hours(session_factory, NOV1, 3)
    with session_scope(session_factory) as session:
        spent = costs.spend(
            session, "component:default/bot", NOV1.timestamp(), NOV1.timestamp() + 3 * 3600
        )
    # CPU, memory and storage as in test_desired_state_prices_every_resource.
    assert spent == pytest.approx(3 * (2 * usd_per_gpu + 0.50 + 0.205 + 0.05))


def test_gpu_price_item_for_a_class() -> None:
    prices = dict(costs.DEFAULT_PRICES)
    assert gpu_price(prices, "nvidia-l4") == ("gpu:nvidia-l4", 0.80)
    # The template's short names and the GPU operator's product labels.
    assert gpu_price(prices, "L4") == ("gpu:nvidia-l4", 0.80)
    assert gpu_price(prices, "NVIDIA-L4") == ("gpu:nvidia-l4", 0.80)
    assert gpu_price(prices, "NVIDIA-A100-SXM4-80GB") == ("gpu:nvidia-a100-80gb", 3.70)
    assert gpu_price(prices, "NVIDIA-A100-SXM4-40GB") == ("gpu:nvidia-a100", 3.00)
    assert gpu_price(prices, "NVIDIA-H200") == ("gpu:nvidia-h200", 6.00)
    # The most specific item wins; a different model never matches by prefix.
    assert gpu_price({**prices, "gpu:a100-80gb": 3.90}, "A100-80GB") == ("gpu:a100-80gb", 3.90)
    assert gpu_price(prices, "L40S") == ("gpu:default", 2.50)
    assert gpu_price(prices, None) == ("gpu:default", 2.50)
    assert gpu_price({}, "H100") == ("gpu:default", 0.0)
