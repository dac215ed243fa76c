"""Hourly rate of a service from the desired state provisioning applied.

rate = sum over Deployments/StatefulSets of replicas x (CPU cores x cpu_core_hour
+ memory GiB x memory_gb_hour + nvidia.com/gpu x price of the GPU class), plus the
storage its PersistentVolumeClaims request (GiB x storage_gb_month / 730 per hour;
a StatefulSet's volumeClaimTemplates once per replica). Replicas: the live count the
reconciler recorded for the object when it has one, else ``spec.replicas``; a workload
an HPA scales and whose ``spec.replicas`` was released uses the HPA's ``minReplicas``.
Quantities are parsed by the official client's ``parse_quantity``; memory and storage are
counted in GiB (2^30 bytes), as OpenCost does.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

HOURS_PER_MONTH = 730
GIB = Decimal(2**30)
PRICED_WORKLOADS = {"Deployment", "StatefulSet"}


@dataclass
class Rate:
    """$ per hour by resource, and GPUs running."""

    gpu: float = 0.0
    cpu: float = 0.0
    memory: float = 0.0
    storage: float = 0.0
    gpus: float = 0.0

    @property
    def total(self) -> float:
        return self.gpu + self.cpu + self.memory + self.storage

    def as_dict(self) -> dict[str, float]:
        return {
            "gpuUsdPerHour": round(self.gpu, 6),
            "cpuUsdPerHour": round(self.cpu, 6),
            "memoryUsdPerHour": round(self.memory, 6),
            "storageUsdPerHour": round(self.storage, 6),
            "totalUsdPerHour": round(self.total, 6),
            "gpus": self.gpus,
        }


def quantity(value: Any) -> float:
    """A Kubernetes quantity ("500m", "16Gi", "2", 4) as a float; missing counts as 0."""
    if value is None or value == "":
        return 0.0
    return float(parse_quantity(value))


def _requests(container: dict[str, Any]) -> dict[str, Any]:
    resources = container.get("resources") or {}
    # A container with only limits gets requests = limits from the API server.
    return {**(resources.get("limits") or {}), **(resources.get("requests") or {})}


def _live_replicas(detail: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    out = {}
    for item in detail or []:
        live = item.get("replicas")
        if isinstance(live, int | float) and not isinstance(live, bool):
            out[(item.get("kind"), item.get("name"))] = float(live)
    return out


def _hpa_min(objects: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    out = {}
    for obj in objects:
        if obj.get("kind") == "HorizontalPodAutoscaler":
            spec = obj.get("spec") or {}
            ref = spec.get("scaleTargetRef") or {}
            out[(ref.get("kind"), ref.get("name"))] = float(spec.get("minReplicas", 1))
    return out


def _claim_gib(claim: dict[str, Any]) -> float:
    requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    return quantity(requests.get("storage")) / float(GIB)


def desired_rate(
    objects: list[dict[str, Any]],
    detail: list[dict[str, Any]],
    prices: dict[str, float],
    gpu_class: str | None,
) -> Rate:
    """The hourly rate of a desired state (``provisioned_services.desired``)."""
    gpu_class = (gpu_class or "default").lower()
    gpu_price = prices.get(f"gpu:{gpu_class}", prices.get("gpu:default", 0.0))
    cpu_price = prices.get("cpu_core_hour", 0.0)
    memory_price = prices.get("memory_gb_hour", 0.0)
    storage_price = prices.get("storage_gb_month", 0.0) / HOURS_PER_MONTH
    live = _live_replicas(detail)
    hpa = _hpa_min(objects)
    rate = Rate()
    for obj in objects:
        kind = obj.get("kind")
        name = (obj.get("metadata") or {}).get("name")
        spec = obj.get("spec") or {}
        if kind == "PersistentVolumeClaim":
            rate.storage += _claim_gib(obj) * storage_price
            continue
        if kind not in PRICED_WORKLOADS:
            continue
        if (kind, name) in live:
            replicas = live[(kind, name)]
        elif "replicas" in spec:
            replicas = float(spec["replicas"])
        else:
            replicas = hpa.get((kind, name), 1.0)  # Kubernetes' default is 1
        pod = (spec.get("template") or {}).get("spec") or {}
        cpu = memory = gpus = 0.0
        for container in pod.get("containers") or []:
            requests = _requests(container)
            cpu += quantity(requests.get("cpu"))
            memory += quantity(requests.get("memory")) / float(GIB)
            gpus += quantity(requests.get("nvidia.com/gpu"))
        rate.cpu += replicas * cpu * cpu_price
        rate.memory += replicas * memory * memory_price
        rate.gpu += replicas * gpus * gpu_price
        rate.gpus += replicas * gpus
        if kind == "StatefulSet":
            claims = sum(_claim_gib(c) for c in spec.get("volumeClaimTemplates") or [])
            rate.storage += replicas * claims * storage_price
    return rate
