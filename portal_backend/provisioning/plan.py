"""From rendered objects to an ordered apply plan.

Order (the issue's dependency order): namespace; service accounts, secrets and config;
storage; Qdrant; vLLM and the CPU fallback; the RAG API; the ingestion job. Components
are recognised by ``app.kubernetes.io/component`` (falling back to the object's name).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from portal_backend import metadata_keys

# A service's name is its Kubernetes namespace: an RFC 1123 label.
SERVICE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
STAGES = ("namespace", "config", "storage", "qdrant", "models", "api", "ingestion")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
_CONFIG_KINDS = {
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "Secret",
    "ConfigMap",
    "LimitRange",
    "ResourceQuota",
}


@dataclass
class PlannedObject:
    obj: dict[str, Any]
    stage: str

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace: str | None = self.obj["metadata"].get("namespace")
        return namespace

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "apiVersion": self.obj.get("apiVersion"),
            "stage": self.stage,
        }


def component_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    text = (labels.get("app.kubernetes.io/component") or meta.get("name") or "").lower()
    if "ingest" in text:
        return "ingestion"
    if "qdrant" in text or "vector" in text:
        return "qdrant"
    if is_cpu_fallback(obj):
        return "models"
    if any(t in text for t in ("vllm", "llm", "model-server", "model")):
        return "models"
    if "api" in text:
        return "api"
    return ""


def is_cpu_fallback(obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    text = f"{labels.get('app.kubernetes.io/component', '')} {meta.get('name', '')}".lower()
    return any(t in text for t in ("cpu", "llama-cpp", "llamacpp", "llama.cpp", "fallback"))


def stage_of(obj: dict[str, Any]) -> str:
    kind = obj.get("kind")
    if kind == "Namespace":
        return "namespace"
    if kind in _CONFIG_KINDS:
        return "config"
    if kind == "PersistentVolumeClaim":
        return "storage"
    component = component_of(obj)
    if component:
        return component
    # Unattributed workloads and services go with the API; policies before workloads.
    return "config" if kind == "NetworkPolicy" else "api"


def order_objects(objects: list[dict[str, Any]]) -> list[PlannedObject]:
    planned = [PlannedObject(obj, stage_of(obj)) for obj in objects]
    # Stable: within a stage, the bundle's own order (kustomize's) is kept.
    return sorted(planned, key=lambda p: STAGES.index(p.stage))


def check_service_objects(objects: list[dict[str, Any]], service: str) -> list[str]:
    """Problems that would make teardown or the reconciler miss an object."""
    problems = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        label = (meta.get("labels") or {}).get(metadata_keys.SERVICE)
        ref = f"{obj.get('kind')}/{meta.get('name')}"
        if label != service:
            problems.append(
                f"{ref}: label {metadata_keys.SERVICE} must be {service!r} (found {label!r}); "
                "teardown finds objects by this label"
            )
        if obj.get("kind") != "Namespace" and meta.get("namespace") not in (None, service):
            problems.append(
                f"{ref}: namespace {meta.get('namespace')!r}; a service lives in namespace "
                f"{service!r}"
            )
    return problems


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template")
    return (template or {}).get("spec") if template is not None else None


def gpus_per_pod(obj: dict[str, Any]) -> int:
    spec = pod_spec(obj) or {}
    total = 0
    for container in spec.get("containers") or []:
        resources = container.get("resources") or {}
        value = (resources.get("limits") or {}).get("nvidia.com/gpu") or (
            resources.get("requests") or {}
        ).get("nvidia.com/gpu")
        total += int(value or 0)
    return total


def replicas_of(obj: dict[str, Any]) -> int:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "Job":
        return int(spec.get("parallelism") or 1)
    return int(spec.get("replicas", 1))


def gpu_workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        o
        for o in objects
        if o.get("kind") in WORKLOAD_KINDS and gpus_per_pod(o) > 0 and replicas_of(o) > 0
    ]


def use_cpu_fallback(objects: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """GPU workloads scaled to zero, the CPU fallback to one (at least); what changed."""
    fallbacks = [
        o
        for o in objects
        if o.get("kind") in WORKLOAD_KINDS and is_cpu_fallback(o) and gpus_per_pod(o) == 0
    ]
    if not fallbacks:
        return objects, []
    changed: list[str] = []
    out = copy.deepcopy(objects)
    for obj in out:
        if obj.get("kind") not in {"Deployment", "StatefulSet"}:
            continue
        ref = f"{obj['kind']}/{obj['metadata']['name']}"
        if gpus_per_pod(obj) > 0 and replicas_of(obj) > 0:
            obj["spec"]["replicas"] = 0
            changed.append(f"{ref} scaled to 0 (no GPU capacity)")
        elif is_cpu_fallback(obj) and replicas_of(obj) == 0:
            obj["spec"]["replicas"] = 1
            changed.append(f"{ref} scaled to 1 (CPU fallback)")
    # An HPA would scale the GPU Deployment back up: leave it out while on CPU.
    scaled_to_zero = {
        o["metadata"]["name"] for o in out if gpus_per_pod(o) > 0 and replicas_of(o) == 0
    }
    kept = []
    for obj in out:
        target = ((obj.get("spec") or {}).get("scaleTargetRef") or {}).get("name")
        if obj.get("kind") == "HorizontalPodAutoscaler" and target in scaled_to_zero:
            changed.append(f"HorizontalPodAutoscaler/{obj['metadata']['name']} left out")
            continue
        kept.append(obj)
    return kept, changed


def referenced_secrets(objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Secret name -> keys that pods reference (env, envFrom, volumes)."""
    refs: dict[str, set[str]] = {}
    for obj in objects:
        spec = pod_spec(obj)
        if not spec:
            continue
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref.get("name"):
                    refs.setdefault(ref["name"], set()).add(ref["key"])
            for source in container.get("envFrom") or []:
                ref = source.get("secretRef")
                if ref and ref.get("name"):
                    refs.setdefault(ref["name"], set())
        for volume in spec.get("volumes") or []:
            secret = volume.get("secret")
            if secret and secret.get("secretName"):
                keys = {item["key"] for item in secret.get("items") or []}
                refs.setdefault(secret["secretName"], set()).update(keys)
    return refs


def release_autoscaled_replicas(
    objects: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Drop ``spec.replicas`` from workloads a HorizontalPodAutoscaler of the bundle scales.

    Kubernetes' advice for HPA targets: otherwise every apply resets the replica count
    the autoscaler chose, and the reconciler would call each scale-out drift.
    """
    targets = {
        (ref.get("kind"), ref.get("name"))
        for o in objects
        if o.get("kind") == "HorizontalPodAutoscaler"
        for ref in [(o.get("spec") or {}).get("scaleTargetRef") or {}]
    }
    out, released = [], []
    for obj in objects:
        if (obj.get("kind"), obj["metadata"].get("name")) in targets and "replicas" in (
            obj.get("spec") or {}
        ):
            obj = copy.deepcopy(obj)
            del obj["spec"]["replicas"]
            released.append(f"{obj['kind']}/{obj['metadata']['name']}")
        out.append(obj)
    return out, released
