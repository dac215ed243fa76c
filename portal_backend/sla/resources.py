"""Hourly rate of a service from the desired state provisioning applied.

rate = sum over Deployments/StatefulSets of replicas x (CPU cores x cpu_core_hour
+ memory GiB x memory_gb_hour + nvidia.com/gpu x price of the GPU class), plus the
storage its PersistentVolumeClaims request (GiB x storage_gb_month / 730 per hour;
a StatefulSet's volumeClaimTemplates once per replica). Replicas: the live count the
reconciler recorded for the object when it has one, else ``spec.replicas``; a workload
an HPA scales and whose ``spec.replicas`` was released uses the HPA's ``minReplicas``.
Quantities are parsed by the official client's ``parse_quantity``; memory and storage are
counted in GiB (2^30 bytes), as OpenCost does.

GPU class of a workload: what provisioning applied, i.e. the GPU-product node selector
its pods were scheduled with (``nvidia.com/gpu.product: NVIDIA-L4``), else the
``rag-portal.io/gpu-class`` annotation rendered on the workload or its pod template;
only then the class annotated on the catalog entity. The price item is ``gpu:<class>``,
else the most specific ``gpu:`` item whose name tokens (vendor words aside) are all in
the class (``NVIDIA-A100-SXM4-80GB`` -> ``gpu:nvidia-a100``; ``L4`` -> ``gpu:nvidia-l4``;
``L40S`` is not ``L4``), else ``gpu:default``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from portal_backend import metadata_keys
from portal_backend.rag.gpu_classes import name_words, names_match

HOURS_PER_MONTH = 730
GIB = Decimal(2**30)
PRICED_WORKLOADS = {"Deployment", "StatefulSet"}
# Node labels that name the GPU model (NVIDIA GPU feature discovery, GKE).
GPU_PRODUCT_LABELS = ("nvidia.com/gpu.product", "cloud.google.com/gke-accelerator")


@dataclass
class Rate:
    """$ per hour by resource, and GPUs running."""

    gpu: float = 0.0
    cpu: float = 0.0
    memory: float = 0.0
    storage: float = 0.0
    # A service on the local runtime: the admin's flat $/hour for this machine's share.
    local: float = 0.0
    gpus: float = 0.0
    # One entry per (class, price item, source): which GPUs were priced how.
    gpu_classes: list[dict[str, Any]] = field(default_factory=list)

    def add_gpus(
        self, gpus: float, gpu_class: str | None, source: str, prices: dict[str, float]
    ) -> None:
        item, price = gpu_price(prices, gpu_class)
        self.gpu += gpus * price
        self.gpus += gpus
        for entry in self.gpu_classes:
            if (entry["gpuClass"], entry["priceItem"], entry["source"]) == (
                gpu_class,
                item,
                source,
            ):
                entry["gpus"] += gpus
                return
        self.gpu_classes.append(
            {"gpuClass": gpu_class, "priceItem": item, "source": source, "gpus": gpus}
        )

    @property
    def total(self) -> float:
        return self.gpu + self.cpu + self.memory + self.storage + self.local

    def as_dict(self) -> dict[str, Any]:
        return {
            "gpuUsdPerHour": round(self.gpu, 6),
            "cpuUsdPerHour": round(self.cpu, 6),
            "memoryUsdPerHour": round(self.memory, 6),
            "storageUsdPerHour": round(self.storage, 6),
            "localRuntimeUsdPerHour": round(self.local, 6),
            "totalUsdPerHour": round(self.total, 6),
            "gpus": self.gpus,
            "gpuClasses": [dict(e) for e in self.gpu_classes],
        }


def gpu_price(prices: dict[str, float], gpu_class: str | None) -> tuple[str, float]:
    """(price item, $ per GPU-hour) for a GPU class; see the module docstring."""
    if gpu_class:
        exact = f"gpu:{gpu_class.lower()}"
        if exact in prices:
            return exact, prices[exact]
        matches = [
            (len(name_words(item[4:])), item)
            for item in prices
            if item.startswith("gpu:") and item != "gpu:default"
            if names_match(item[4:], gpu_class)
        ]
        if matches:
            item = max(matches)[1]
            return item, prices[item]
    return "gpu:default", prices.get("gpu:default", 0.0)


def applied_gpu_class(obj: dict[str, Any]) -> str | None:
    """The GPU class provisioning applied to a workload, from its rendered manifest."""
    template = (obj.get("spec") or {}).get("template") or {}
    selector = (template.get("spec") or {}).get("nodeSelector") or {}
    for label in GPU_PRODUCT_LABELS:
        if selector.get(label):
            return str(selector[label])
    for metadata in (obj.get("metadata") or {}, template.get("metadata") or {}):
        value = (metadata.get("annotations") or {}).get(metadata_keys.GPU_CLASS)
        if value:
            return str(value)
    return None


def quantity(value: Any) -> float:
    """A Kubernetes quantity ("500m", "16Gi", "2", 4) as a float; missing counts as 0."""
    if value is None or value == "":
        return 0.0
    return float(parse_quantity(value))


def _requests(container: dict[str, Any]) -> dict[str, Any]:
    resources = container.get("resources") or {}
    # A container with only limits gets requests = limits from the API server.
    return {**(resources.get("limits") or {}), **(resources.get("requests") or {})}


# Workloads by (kind, name) as the documents spell them (None where one is missing).
Workload = tuple[str | None, str | None]


def _live_replicas(detail: list[dict[str, Any]]) -> dict[Workload, float]:
    out = {}
    for item in detail or []:
        live = item.get("replicas")
        if isinstance(live, int | float) and not isinstance(live, bool):
            out[(item.get("kind"), item.get("name"))] = float(live)
    return out


def _hpa_min(objects: list[dict[str, Any]]) -> dict[Workload, float]:
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
    """The hourly rate of a desired state (``provisioned_services.desired``);
    ``gpu_class`` (the entity's annotation) prices GPUs whose manifest names no class."""
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
        if gpus:
            applied = applied_gpu_class(obj)
            source = "provisioned" if applied else "annotation"
            rate.add_gpus(replicas * gpus, applied or gpu_class, source, prices)
        if kind == "StatefulSet":
            claims = sum(_claim_gib(c) for c in spec.get("volumeClaimTemplates") or [])
            rate.storage += replicas * claims * storage_price
    return rate
