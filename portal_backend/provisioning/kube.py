"""Thin access to a cluster's REST API through the official ``kubernetes`` client.

One generic call (``ApiClient.call_api``) covers every kind the bundles use, so the
provisioner needs no discovery round-trips. Transient failures (429, 5xx, timeouts,
connection resets) are retried with exponential backoff; 403 and 422 are permanent and
surface the API server's own message.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from portal_backend.settings import ClusterConfig

FIELD_MANAGER = "rag-portal"
RETRYABLE_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class ResourceType:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def base_path(self) -> str:
        if "/" in self.api_version:
            return f"/apis/{self.api_version}"
        return f"/api/{self.api_version}"


_TYPES = [
    ResourceType("v1", "Namespace", "namespaces", namespaced=False),
    ResourceType("v1", "Node", "nodes", namespaced=False),
    ResourceType("v1", "Pod", "pods"),
    ResourceType("v1", "Event", "events"),
    ResourceType("v1", "Secret", "secrets"),
    ResourceType("v1", "ConfigMap", "configmaps"),
    ResourceType("v1", "Service", "services"),
    ResourceType("v1", "ServiceAccount", "serviceaccounts"),
    ResourceType("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ResourceType("v1", "LimitRange", "limitranges"),
    ResourceType("v1", "ResourceQuota", "resourcequotas"),
    ResourceType("apps/v1", "Deployment", "deployments"),
    ResourceType("apps/v1", "StatefulSet", "statefulsets"),
    ResourceType("batch/v1", "Job", "jobs"),
    ResourceType("batch/v1", "CronJob", "cronjobs"),
    ResourceType("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ResourceType("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ResourceType("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    ResourceType("networking.k8s.io/v1", "Ingress", "ingresses"),
    ResourceType("rbac.authorization.k8s.io/v1", "Role", "roles"),
    ResourceType("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings"),
    ResourceType("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    ResourceType("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
]
TYPES_BY_KIND = {(t.api_version, t.kind): t for t in _TYPES}
KINDS = {t.kind: t for t in _TYPES}


class KubeError(Exception):
    """A cluster call failed for good; ``message`` is the API server's own words."""

    def __init__(self, status: int | None, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


def resource_type(obj_or_kind: dict[str, Any] | str) -> ResourceType:
    if isinstance(obj_or_kind, str):
        if obj_or_kind not in KINDS:
            raise KubeError(None, f"kind {obj_or_kind} is not supported by the provisioner")
        return KINDS[obj_or_kind]
    key = (obj_or_kind.get("apiVersion", ""), obj_or_kind.get("kind", ""))
    if key not in TYPES_BY_KIND:
        raise KubeError(
            None,
            f"{key[1]} ({key[0]}) is not a kind the provisioner knows how to apply; "
            f"supported: {', '.join(sorted(KINDS))}",
        )
    return TYPES_BY_KIND[key]


def object_path(rtype: ResourceType, namespace: str | None, name: str | None = None) -> str:
    path = rtype.base_path()
    if rtype.namespaced and namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{rtype.plural}"
    if name:
        path += f"/{name}"
    return path


def api_client_for(cluster: ClusterConfig) -> k8s_client.ApiClient:
    """An ApiClient for a configured cluster (kubeconfig + context, or in-cluster)."""
    configuration = k8s_client.Configuration()
    if cluster.in_cluster:
        k8s_config.load_incluster_config(client_configuration=configuration)
    else:
        k8s_config.load_kube_config(
            config_file=str(cluster.kubeconfig) if cluster.kubeconfig else None,
            context=cluster.context,
            client_configuration=configuration,
        )
    # Our own retry loop decides what is transient; urllib3 must not retry underneath it.
    configuration.retries = False
    return k8s_client.ApiClient(configuration)


def _api_message(exc: ApiException) -> tuple[str, str]:
    try:
        body = json.loads(exc.body or "{}")
    except ValueError:
        body = {}
    return body.get("message") or exc.reason or str(exc.status), body.get("reason", "")


class KubeClient:
    """Generic get/list/apply/delete with retries; counts the calls it makes."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        *,
        request_timeout_s: float = 30.0,
        max_attempts: int = 6,
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.api = api_client
        self.request_timeout_s = request_timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.sleep = sleep
        self.on_retry = on_retry
        self._lock = threading.Lock()
        self.calls = 0
        self.retries = 0

    def close(self) -> None:
        self.api.close()

    # ------------------------------------------------------------------ raw call
    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        not_found_ok: bool = False,
    ) -> dict[str, Any] | None:
        attempt = 0
        while True:
            attempt += 1
            with self._lock:
                self.calls += 1
            try:
                response: dict[str, Any] | None = self.api.call_api(
                    path,
                    method,
                    query_params=list((query or {}).items()),
                    header_params={"Content-Type": content_type, "Accept": "application/json"},
                    body=body,
                    response_type="object",
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _preload_content=True,
                    # (connect, read): the client ignores a plain float timeout.
                    _request_timeout=(self.request_timeout_s, self.request_timeout_s),
                )
                return response
            except ApiException as exc:
                if exc.status == 404 and not_found_ok:
                    return None
                message, reason = _api_message(exc)
                if exc.status in RETRYABLE_STATUS and attempt < self.max_attempts:
                    self._backoff(attempt, f"{method} {path}: {exc.status} {message}", exc)
                    continue
                raise KubeError(exc.status, message, reason) from exc
            except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
                # Timeouts, resets and refused connections: transient until attempts run out.
                if attempt < self.max_attempts:
                    self._backoff(attempt, f"{method} {path}: {type(exc).__name__}", None)
                    continue
                raise KubeError(
                    None, f"{method} {path} failed after {attempt} attempts: {exc}"
                ) from exc

    def _backoff(self, attempt: int, what: str, exc: ApiException | None) -> None:
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        retry_after = exc.headers.get("Retry-After") if exc is not None and exc.headers else None
        if retry_after and retry_after.isdigit():
            delay = min(self.backoff_max_s, float(retry_after))
        delay *= 0.5 + random.random() / 2  # jitter: many workers must not retry in step
        with self._lock:
            self.retries += 1
        if self.on_retry:
            self.on_retry(f"retrying in {delay:.1f}s after {what}")
        self.sleep(delay)

    # ------------------------------------------------------------------ verbs
    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        path = object_path(resource_type(kind), namespace, name)
        return self.request("GET", path, not_found_ok=True)

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        query = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        result = self.request("GET", object_path(resource_type(kind), namespace), query=query)
        return list((result or {}).get("items") or [])

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply, field manager ``rag-portal``.

        ``force=true`` as Kubernetes documents for controllers: the bundle is the source
        of truth for the fields it sets, so a field another manager took is taken back.
        """
        rtype = resource_type(obj)
        meta = obj["metadata"]
        path = object_path(rtype, meta.get("namespace"), meta["name"])
        query = {"fieldManager": FIELD_MANAGER, "force": "true"}
        if dry_run:
            query["dryRun"] = "All"
        result = self.request(
            "PATCH", path, query=query, body=obj, content_type="application/apply-patch+yaml"
        )
        return result or {}

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        path = object_path(resource_type(kind), namespace, name)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        return self.request("DELETE", path, body=body, not_found_ok=True) is not None
