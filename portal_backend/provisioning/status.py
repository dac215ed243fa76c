"""What a live object's state is: ready, progressing, failed (and why), drifted.

Failure reasons come from where a person would look with kubectl: the pods' container
states (image pull errors, crash loops), their scheduling condition, and the events on
them (``Failed``, ``BackOff``, ``FailedScheduling``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes.utils import parse_quantity

from portal_backend.provisioning.kube import KubeClient
from portal_backend.provisioning.plan import WORKLOAD_KINDS, replicas_of

FATAL_WAITING = {
    "ImagePullBackOff": "image pull error",
    "ErrImagePull": "image pull error",
    "InvalidImageName": "invalid image name",
    "CrashLoopBackOff": "crash loop",
    "CreateContainerConfigError": "container configuration error",
}
EVENT_REASONS = {"Failed", "BackOff", "FailedScheduling", "FailedMount", "BackoffLimitExceeded"}


@dataclass
class ObjectStatus:
    kind: str
    name: str
    state: str  # Ready | Progressing | Failed | Missing | Present
    message: str = ""
    reason: str = ""
    drift: list[str] | None = None
    # Pods the workload runs now (status.replicas): cost accrues on live, not desired, counts.
    replicas: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "state": self.state}
        if self.replicas is not None:
            out["replicas"] = self.replicas
        if self.message:
            out["message"] = self.message
        if self.reason:
            out["reason"] = self.reason
        if self.drift:
            out["drift"] = self.drift
        return out


def readiness(live: dict[str, Any]) -> tuple[bool, str]:
    """Whether a workload is ready, and a progress line for the log."""
    kind, meta = live["kind"], live["metadata"]
    spec, status = live.get("spec") or {}, live.get("status") or {}
    if kind == "Job":
        completions = int(spec.get("completions") or 1)
        succeeded = int(status.get("succeeded") or 0)
        return succeeded >= completions, f"{succeeded}/{completions} completions"
    wanted = replicas_of(live)
    ready = int(status.get("readyReplicas") or 0)
    if kind == "Deployment":
        observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 1)
        updated = int(status.get("updatedReplicas") or 0)
        available = int(status.get("availableReplicas") or 0)
        done = observed and updated >= wanted and available >= wanted and ready >= wanted
        return done, f"{ready}/{wanted} ready, {updated} updated"
    if kind == "StatefulSet":
        return ready >= wanted, f"{ready}/{wanted} ready"
    return True, "present"


def _pod_selector(live: dict[str, Any]) -> str | None:
    spec = live.get("spec") or {}
    labels = (spec.get("selector") or {}).get("matchLabels")
    if not labels and live["kind"] == "Job":
        labels = {"job-name": live["metadata"]["name"]}
    if not labels:
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    if not labels:
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


PULL_ERRORS = {"ImagePullBackOff", "ErrImagePull"}


def failure_reason(
    kube: KubeClient,
    live: dict[str, Any],
    *,
    unschedulable_is_fatal: bool,
    awaited_images: frozenset[str] = frozenset(),
) -> tuple[str, str] | None:
    """(reason, message) when the cluster says this workload cannot become ready.

    A pull error of an image in ``awaited_images`` (the repository's own images at the
    deployed commit, which its CI may still be building) is not a failure (yet)."""
    if live["kind"] == "Job":
        for cond in (live.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Failed" and cond.get("status") == "True":
                return cond.get("reason") or "JobFailed", cond.get("message") or "job failed"
    selector = _pod_selector(live)
    if selector is None:
        return None
    namespace = live["metadata"].get("namespace")
    for pod in kube.list("Pod", namespace, label_selector=selector):
        pod_name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        found: tuple[str, str] | None = None
        spec = pod.get("spec") or {}
        images = {
            c.get("name"): c.get("image")
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
        }
        for cs in (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or []
        ):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            image = cs.get("image") or images.get(cs.get("name"))
            if waiting.get("reason") in PULL_ERRORS and image in awaited_images:
                continue
            if waiting.get("reason") in FATAL_WAITING:
                found = (
                    waiting["reason"],
                    f"{FATAL_WAITING[waiting['reason']]} in pod {pod_name} container "
                    f"{cs.get('name')}: {waiting.get('message', '')}".rstrip(": "),
                )
                break
        if found is None and unschedulable_is_fatal:
            for cond in status.get("conditions") or []:
                if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                    found = (
                        "Unschedulable",
                        f"pod {pod_name} unschedulable: {cond.get('message')}",
                    )
        if found is None:
            continue
        # The event usually carries the cluster's precise words (registry error, node counts).
        events = kube.list("Event", namespace, field_selector=f"involvedObject.name={pod_name}")
        warnings = [
            e for e in events if e.get("type") == "Warning" and e.get("reason") in EVENT_REASONS
        ]
        if warnings:
            last = warnings[-1]
            return found[0], f"{found[1]} (event {last['reason']}: {last.get('message', '')})"
        return found
    return None


def _equal_scalar(desired: Any, live: Any) -> bool:
    if desired == live:
        return True
    if isinstance(desired, str | int | float) and isinstance(live, str | int | float):
        try:  # "1000m" and "1" are the same CPU; the API server may normalise either way
            return bool(parse_quantity(desired) == parse_quantity(live))
        except (ValueError, TypeError):
            return str(desired) == str(live)
    return False


def diff_desired(desired: Any, live: Any, path: str = "") -> list[str]:
    """Fields set in ``desired`` whose live value differs (server defaults are ignored)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [f"{path or '.'}: missing"]
        out: list[str] = []
        for key, value in desired.items():
            out.extend(diff_desired(value, live.get(key), f"{path}.{key}" if path else key))
        return out
    if isinstance(desired, list):
        if not isinstance(live, list):
            return [f"{path}: missing"]
        named = all(isinstance(i, dict) and "name" in i for i in desired + live)
        if named:
            by_name = {i["name"]: i for i in live}
            out = []
            for item in desired:
                sub = f"{path}[{item['name']}]"
                out.extend(
                    diff_desired(item, by_name[item["name"]], sub)
                    if item["name"] in by_name
                    else [f"{sub}: missing"]
                )
            return out
        if len(desired) != len(live):
            return [f"{path}: {len(live)} items, want {len(desired)}"]
        out = []
        for i, (d, v) in enumerate(zip(desired, live, strict=True)):
            out.extend(diff_desired(d, v, f"{path}[{i}]"))
        return out
    if desired is None or _equal_scalar(desired, live):
        return []
    return [f"{path}: live {live!r}, want {desired!r}"]


def drift_of(desired: dict[str, Any], live: dict[str, Any]) -> list[str]:
    relevant = {k: v for k, v in desired.items() if k not in ("status", "metadata")}
    meta = desired.get("metadata") or {}
    relevant["metadata"] = {k: meta[k] for k in ("labels", "annotations") if meta.get(k)}
    if desired.get("kind") == "Secret":  # values live in the secret store, not here
        relevant = {"metadata": relevant["metadata"]}
    return diff_desired(relevant, live)


def object_status(
    kube: KubeClient, desired: dict[str, Any], live: dict[str, Any] | None
) -> ObjectStatus:
    kind, name = desired["kind"], desired["metadata"]["name"]
    if live is None:
        return ObjectStatus(kind, name, "Missing", "not found in the cluster")
    drift = drift_of(desired, live) or None
    if kind not in WORKLOAD_KINDS or kind == "Job":
        return ObjectStatus(
            kind, name, "Present" if kind != "Job" else _job_state(live), drift=drift
        )
    ready, progress = readiness(live)
    running = int((live.get("status") or {}).get("replicas") or 0)
    if ready:
        return ObjectStatus(kind, name, "Ready", progress, drift=drift, replicas=running)
    failed = failure_reason(kube, live, unschedulable_is_fatal=True)
    if failed:
        return ObjectStatus(
            kind, name, "Failed", failed[1], failed[0], drift=drift, replicas=running
        )
    return ObjectStatus(kind, name, "Progressing", progress, drift=drift, replicas=running)


def _job_state(live: dict[str, Any]) -> str:
    # A finished ingestion Job is not "down"; a running or failed one is worth showing.
    for cond in (live.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return "Ready" if cond["type"] == "Complete" else "Failed"
    return "Progressing"


def overall_state(statuses: list[ObjectStatus]) -> str:
    """Healthy | Progressing | Degraded | Down | Drifted for the whole service."""
    workloads = [s for s in statuses if s.kind in {"Deployment", "StatefulSet"}]
    if statuses and all(s.state == "Missing" for s in statuses):
        return "Down"
    if workloads and all(s.state in ("Missing", "Failed") for s in workloads):
        return "Down"
    if any(s.state in ("Failed",) for s in statuses) or any(
        s.state == "Missing" for s in workloads
    ):
        return "Degraded"
    if any(s.drift for s in statuses) or any(s.state == "Missing" for s in statuses):
        return "Drifted"
    if any(s.state == "Progressing" for s in workloads):
        return "Progressing"
    return "Healthy"
