"""GPU capacity check before applying: will the GPU pods fit on the cluster's nodes?

Free GPUs per node = allocatable ``nvidia.com/gpu`` minus what running pods (other than
this service's own) request. Each GPU pod needs all its GPUs on one node, so pods are
placed first-fit-decreasing rather than compared with a cluster-wide sum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from portal_backend import metadata_keys
from portal_backend.provisioning.kube import KubeClient
from portal_backend.provisioning.plan import gpus_per_pod, pod_spec, replicas_of
from portal_backend.rag.gpu_classes import names_match

GPU = "nvidia.com/gpu"


@dataclass
class CapacityReport:
    fits: bool
    needed: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


def _node_ok(
    node: dict[str, Any], selector: dict[str, str], gpu_class: str | None, class_label: str
) -> bool:
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return False
    if gpu_class and class_label not in selector:
        return names_match(gpu_class, labels.get(class_label, ""))
    return True


def _pod_gpus(pod: dict[str, Any]) -> int:
    total = 0
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        value = (resources.get("limits") or {}).get(GPU) or (resources.get("requests") or {}).get(
            GPU
        )
        total += int(value or 0)
    return total


def check_gpu_capacity(
    kube: KubeClient,
    workloads: list[dict[str, Any]],
    *,
    service: str,
    gpu_class: str | None,
    class_label: str,
) -> CapacityReport:
    if not workloads:
        return CapacityReport(True, message="no GPU workloads")
    nodes = kube.list("Node")
    pods = kube.list("Pod", field_selector="status.phase!=Succeeded,status.phase!=Failed")
    used: dict[str, int] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        labels = pod["metadata"].get("labels") or {}
        if node_name and labels.get(metadata_keys.SERVICE) != service:
            used[node_name] = used.get(node_name, 0) + _pod_gpus(pod)

    report = CapacityReport(True)
    free: dict[str, int] = {}
    for node in nodes:
        name = node["metadata"]["name"]
        allocatable = int(((node.get("status") or {}).get("allocatable") or {}).get(GPU, 0) or 0)
        free[name] = max(0, allocatable - used.get(name, 0))
        report.nodes.append(
            {
                "name": name,
                "allocatable": allocatable,
                "free": free[name],
                "gpuClass": (node["metadata"].get("labels") or {}).get(class_label),
            }
        )
    demands: list[tuple[int, dict[str, Any], list[str]]] = []
    for obj in workloads:
        selector = (pod_spec(obj) or {}).get("nodeSelector") or {}
        per_pod, replicas = gpus_per_pod(obj), replicas_of(obj)
        eligible = [
            n["metadata"]["name"] for n in nodes if _node_ok(n, selector, gpu_class, class_label)
        ]
        report.needed.append(
            {
                "object": f"{obj['kind']}/{obj['metadata']['name']}",
                "gpusPerPod": per_pod,
                "replicas": replicas,
                "eligibleNodes": len(eligible),
            }
        )
        demands.extend((per_pod, obj, eligible) for _ in range(replicas))

    unplaced: list[str] = []
    for per_pod, obj, eligible in sorted(demands, key=lambda d: -d[0]):
        target = next((n for n in eligible if free[n] >= per_pod), None)
        if target is None:
            unplaced.append(f"{obj['kind']}/{obj['metadata']['name']} ({per_pod} GPU per pod)")
        else:
            free[target] -= per_pod
    if unplaced:
        report.fits = False
        total_needed = sum(d[0] for d in demands)
        matching = [n for n in report.nodes if n["name"] in {e for d in demands for e in d[2]}]
        where = f" of class {gpu_class}" if gpu_class else ""
        report.message = (
            f"not enough GPU capacity: {total_needed} x {GPU} needed, placed per pod on one "
            f"node; {len(matching)} node(s){where} with "
            f"{sum(n['free'] for n in matching)} free GPU(s) in total "
            f"({', '.join(n['name'] + ': ' + str(n['free']) for n in matching) or 'none'}); "
            f"cannot place {len(unplaced)} pod(s): {', '.join(sorted(set(unplaced)))}"
        )
    else:
        report.message = f"GPU capacity ok for {len(demands)} GPU pod(s)"
    return report
