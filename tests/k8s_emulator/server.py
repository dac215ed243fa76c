"""A small Kubernetes API server emulator, over real HTTP on 127.0.0.1.

Why not PyPI ``kmock`` directly: its ``KubernetesEmulator`` stores JSON blobs without
uid/resourceVersion/creationTimestamp, ignores the namespace in the URL and label/field
selectors, has no PUT, no create-on-apply (server-side apply), treats Namespace objects
oddly and keeps an unbounded request log; its fixture is async-only. Wrapping it meant
replacing nearly every handler, and installing it registers a pytest plugin that imports
pytest-asyncio in every test session of the repository (kmock 0.8 broke the whole suite
here until pytest-asyncio was added too). So this module implements the same HTTP
semantics the official ``kubernetes`` client relies on, in one threaded stdlib server
that sync tests can start and stop:

- core (``/api/v1``) and group (``/apis/<group>/<version>``) paths, namespaced and
  cluster-scoped, collections and items, ``/status`` subresources;
- GET/list (label selectors ``a=b``, ``a!=b``, ``a``, ``!a``, ``a in (x,y)``; field selectors
  on any dotted path), POST (409 on duplicates), PUT (409 on a stale resourceVersion),
  PATCH as server-side apply (``application/apply-patch+yaml``, creates when missing,
  no-op when nothing changes), JSON merge and JSON patch, DELETE of items and collections
  (namespace deletion cascades);
- metadata stamped like the API server: uid, resourceVersion, generation, creationTimestamp;
- a tiny "controller" that plays the cluster's part: workloads become ready, or get
  pods and events for an image pull error, a crash loop or an unschedulable GPU pod;
- injected faults (status codes, slow responses, connection resets) for retry tests;
- a bounded request log.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonpatch
import yaml

# plural -> kind for the resources the provisioner touches; others derive from the body.
KINDS = {
    "namespaces": "Namespace",
    "nodes": "Node",
    "pods": "Pod",
    "events": "Event",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "services": "Service",
    "serviceaccounts": "ServiceAccount",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "jobs": "Job",
    "cronjobs": "CronJob",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "poddisruptionbudgets": "PodDisruptionBudget",
    "networkpolicies": "NetworkPolicy",
    "roles": "Role",
    "rolebindings": "RoleBinding",
    "servicemonitors": "ServiceMonitor",
    "prometheusrules": "PrometheusRule",
}
CLUSTER_SCOPED = {"namespaces", "nodes", "clusterroles", "clusterrolebindings"}
# Kinds whose status is only written through the /status subresource.
STATUS_SUBRESOURCE = {"deployments", "statefulsets", "jobs", "pods", "nodes", "namespaces"}
WORKLOADS = {"deployments", "statefulsets", "jobs"}
BEHAVIOURS = ("ready", "pending", "image-pull", "crash-loop", "unschedulable-gpu")


@dataclass
class Fault:
    """Answer matching requests badly ``times`` times: a status, a delay or a reset."""

    method: str | None = None
    path_contains: str = ""
    status: int = 500
    times: int = 1
    delay_s: float = 0.0  # > the client's timeout: a timeout
    reset: bool = False  # close the connection without an answer
    message: str = "injected fault"

    def matches(self, method: str, path: str) -> bool:
        return (self.method in (None, method)) and self.path_contains in path


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def _status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
        "code": code,
    }


@dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def parse_path(path: str) -> Route:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest:
        raise ApiError(404, "NotFound", f"no resource in path {path}")
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    return Route(group, version, plural, namespace, name, sub)


def _get_path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    # Commas inside "in (a,b)" do not separate requirements.
    out, depth, cur = [], 0, ""
    for ch in selector:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out if p.strip()]


def label_matches(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for req in _split_selector(selector):
        if m := _SET_RE.match(req):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if (labels.get(key) in values) != (op == "in"):
                return False
        elif "!=" in req:
            key, value = req.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in req:
            key, value = req.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif req.startswith("!"):
            if req[1:] in labels:
                return False
        elif req not in labels:
            return False
    return True


def field_matches(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    for req in _split_selector(selector):
        negate = "!=" in req
        key, value = re.split(r"!=|==|=", req, maxsplit=1)
        actual = _get_path(obj, key.strip())
        actual = "" if actual is None else str(actual)
        if (actual == value.strip()) == negate:
            return False
    return True


def _merge(live: Any, patch: Any) -> Any:
    """JSON merge: dicts merge recursively, ``None`` deletes, anything else replaces."""
    if not isinstance(live, dict) or not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(live)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def _prune(obj: dict[str, Any], previous: dict[str, Any], current: dict[str, Any]) -> None:
    """Server-side apply: fields this manager applied before and dropped now are removed."""
    for key, value in previous.items():
        if key not in current:
            obj.pop(key, None)
        elif isinstance(value, dict) and isinstance(current[key], dict):
            if isinstance(obj.get(key), dict):
                _prune(obj[key], value, current[key])


class EmulatedCluster:
    """In-memory API server state plus the HTTP server that serves it."""

    def __init__(self, *, auto_ready: bool = True, log_size: int = 500) -> None:
        self.auto_ready = auto_ready
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._applied: dict[tuple[tuple[str, str, str, str], str], dict[str, Any]] = {}
        self._rv = 1000
        self.faults: list[Fault] = []
        # Name substring -> behaviour of matching workloads (see BEHAVIOURS).
        self.behaviours: dict[str, str] = {}
        self.ready_delay_s = 0.0
        self.requests: deque[tuple[str, str, int]] = deque(maxlen=log_size)
        self.request_count = 0
        self.writes: list[tuple[str, str, str]] = []  # (verb, kind, name) of changes, in order
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timers: list[threading.Timer] = []

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EmulatedCluster:
        cluster = self

        class Handler(_Handler):
            emulator = cluster

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def write_kubeconfig(self, path: Path, context: str = "emulator") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {"token": "emulator-token"}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # ----------------------------------------------------------------- test helpers
    def add_node(self, name: str, gpus: int = 0, labels: dict[str, str] | None = None) -> None:
        allocatable = {"cpu": "16", "memory": "64Gi", "pods": "110"}
        if gpus:
            allocatable["nvidia.com/gpu"] = str(gpus)
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels or {}},
            "status": {"allocatable": allocatable, "capacity": dict(allocatable)},
        }
        with self._lock:
            self._store(("", "nodes", "", name), node, created=True)

    def objects(self, plural: str | None = None, namespace: str | None = None) -> list[dict]:
        with self._lock:
            return [
                copy.deepcopy(o)
                for (g, p, ns, _), o in self._objects.items()
                if (plural is None or p == plural) and (namespace is None or ns == namespace)
            ]

    def get(self, plural: str, namespace: str, name: str, group: str | None = None) -> dict | None:
        with self._lock:
            for (g, p, ns, n), obj in self._objects.items():
                if p == plural and ns == namespace and n == name and group in (None, g):
                    return copy.deepcopy(obj)
        return None

    def labelled(self, selector: str) -> list[dict]:
        with self._lock:
            return [
                copy.deepcopy(o)
                for o in self._objects.values()
                if label_matches(o["metadata"].get("labels") or {}, selector)
            ]

    def edit(self, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """Change a live object the way someone with kubectl edit would (drift)."""
        with self._lock:
            for key, obj in self._objects.items():
                if key[1] == plural and key[2] == namespace and key[3] == name:
                    self._store(key, _merge(obj, patch))
                    return
        raise KeyError(f"{plural}/{namespace}/{name}")

    def delete_object(self, plural: str, namespace: str, name: str) -> None:
        with self._lock:
            for key in list(self._objects):
                if key[1] == plural and key[2] == namespace and key[3] == name:
                    del self._objects[key]

    # ----------------------------------------------------------------- storage
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _store(
        self, key: tuple[str, str, str, str], obj: dict[str, Any], created: bool = False
    ) -> dict[str, Any]:
        old = self._objects.get(key)
        meta = obj.setdefault("metadata", {})
        if created or old is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
        else:
            for stamp in ("uid", "creationTimestamp", "generation"):
                meta[stamp] = old["metadata"].get(stamp)
            if old.get("spec") != obj.get("spec"):
                meta["generation"] = (old["metadata"].get("generation") or 1) + 1
            unchanged = {**old, "metadata": {**old["metadata"], "resourceVersion": None}} == {
                **obj,
                "metadata": {**meta, "resourceVersion": None},
            }
            if unchanged:
                meta["resourceVersion"] = old["metadata"]["resourceVersion"]
                self._objects[key] = obj
                return obj
        meta["resourceVersion"] = self._next_rv()
        self._objects[key] = obj
        return obj

    # ----------------------------------------------------------------- the "controllers"
    def _behaviour(self, name: str) -> str:
        for fragment, mode in self.behaviours.items():
            if fragment in name:
                return mode
        return "ready" if self.auto_ready else "pending"

    def _react(self, plural: str, obj: dict[str, Any]) -> None:
        if plural not in WORKLOADS:
            return
        mode = self._behaviour(obj["metadata"]["name"])
        if mode == "ready":
            if self.ready_delay_s:
                timer = threading.Timer(self.ready_delay_s, self._mark_ready_later, (plural, obj))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
            else:
                self._mark_ready(plural, obj)
        elif mode != "pending":
            self._fail(plural, obj, mode)

    def _mark_ready_later(self, plural: str, obj: dict[str, Any]) -> None:
        with self._lock:
            meta = obj["metadata"]
            live = self.get(plural, meta.get("namespace", ""), meta["name"])
            if live is not None:
                self._mark_ready(plural, live)

    def _mark_ready(self, plural: str, obj: dict[str, Any]) -> None:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        if plural == "jobs":
            completions = spec.get("completions") or 1
            status = {
                "succeeded": completions,
                "conditions": [{"type": "Complete", "status": "True"}],
                "completionTime": _now(),
            }
        else:
            replicas = spec.get("replicas", 1)
            status = {
                "observedGeneration": meta.get("generation", 1),
                "replicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
                "updatedReplicas": replicas,
            }
            if plural == "statefulsets":
                status["currentReplicas"] = replicas
        self.set_status(plural, meta.get("namespace", ""), meta["name"], status)

    def set_status(self, plural: str, namespace: str, name: str, status: dict) -> None:
        with self._lock:
            for key, obj in self._objects.items():
                if key[1] == plural and key[2] == namespace and key[3] == name:
                    new = copy.deepcopy(obj)
                    new["status"] = status
                    self._store(key, new)
                    return

    def _fail(self, plural: str, obj: dict[str, Any], mode: str) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "")
        template = (obj.get("spec") or {}).get("template") or {}
        if plural == "jobs":
            template = template or {}
        containers = (template.get("spec") or {}).get("containers") or [{"name": "main"}]
        container = containers[0]
        pod_name = f"{meta['name']}-{uuid.uuid4().hex[:5]}"
        pod_status: dict[str, Any] = {"phase": "Pending"}
        if mode == "image-pull":
            image = container.get("image", "")
            reason, message = "ImagePullBackOff", f'Back-off pulling image "{image}"'
            event = (
                "Failed",
                f'Failed to pull image "{image}": rpc error: code = NotFound desc = '
                f"failed to pull and unpack image: not found",
            )
            pod_status["containerStatuses"] = [
                {
                    "name": container.get("name", "main"),
                    "ready": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
            ]
        elif mode == "crash-loop":
            pod_status["phase"] = "Running"
            message = f"back-off 5m0s restarting failed container={container.get('name')}"
            pod_status["containerStatuses"] = [
                {
                    "name": container.get("name", "main"),
                    "ready": False,
                    "restartCount": 6,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": message}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                }
            ]
            event = (
                "BackOff",
                f"Back-off restarting failed container {container.get('name')} in pod {pod_name}",
            )
        else:  # unschedulable-gpu
            message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
            pod_status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                }
            ]
            event = ("FailedScheduling", message)
        labels = dict(((template.get("metadata") or {}).get("labels")) or {})
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace, "labels": labels},
            "spec": {"containers": containers},
            "status": pod_status,
        }
        self._store(("", "pods", namespace, pod_name), pod, created=True)
        for involved_kind, involved_name in (("Pod", pod_name),):
            ev_name = f"{involved_name}.{uuid.uuid4().hex[:8]}"
            ev = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": ev_name, "namespace": namespace},
                "involvedObject": {
                    "kind": involved_kind,
                    "name": involved_name,
                    "namespace": namespace,
                },
                "reason": event[0],
                "message": event[1],
                "type": "Warning",
                "count": 3,
                "lastTimestamp": _now(),
            }
            self._store(("", "events", namespace, ev_name), ev, created=True)

    # ----------------------------------------------------------------- request handling
    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        route = parse_path(path)
        key_ns = route.namespace or ""
        if route.plural in CLUSTER_SCOPED:
            key_ns = ""
        with self._lock:
            if route.name is None:
                if method == "GET":
                    return 200, self._list(route, query)
                if method == "POST":
                    return self._create(route, self._parse_body(headers, body))
                if method == "DELETE":
                    return self._delete_collection(route, query)
                raise ApiError(405, "MethodNotAllowed", f"{method} not allowed on a collection")
            key = (route.group, route.plural, key_ns, route.name)
            if method == "GET":
                obj = self._objects.get(key)
                if obj is None:
                    raise self._not_found(route)
                return 200, copy.deepcopy(obj)
            if method == "PUT":
                return self._replace(route, key, self._parse_body(headers, body))
            if method == "PATCH":
                return self._patch(route, key, query, headers, body)
            if method == "DELETE":
                return self._delete(route, key)
        raise ApiError(405, "MethodNotAllowed", f"{method} not allowed")

    @staticmethod
    def _parse_body(headers: dict[str, str], body: bytes) -> Any:
        if not body:
            raise ApiError(400, "BadRequest", "request body is empty")
        try:
            if "yaml" in headers.get("content-type", ""):
                return yaml.safe_load(body)
            return json.loads(body)
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, "BadRequest", f"cannot decode body: {exc}") from exc

    @staticmethod
    def _not_found(route: Route) -> ApiError:
        resource = f"{route.plural}.{route.group}" if route.group else route.plural
        return ApiError(404, "NotFound", f'{resource} "{route.name}" not found')

    def _list(self, route: Route, query: dict[str, str]) -> dict[str, Any]:
        items = []
        for (g, p, ns, _), obj in sorted(self._objects.items()):
            if g != route.group or p != route.plural:
                continue
            if route.namespace and route.plural not in CLUSTER_SCOPED and ns != route.namespace:
                continue
            if not label_matches(obj["metadata"].get("labels") or {}, query.get("labelSelector")):
                continue
            if not field_matches(obj, query.get("fieldSelector")):
                continue
            items.append(copy.deepcopy(obj))
        kind = KINDS.get(route.plural, route.plural.capitalize())
        return {
            "apiVersion": route.api_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _prepare(self, route: Route, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict) or not (obj.get("metadata") or {}).get("name"):
            raise ApiError(422, "Invalid", "metadata.name: Required value: name is required")
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if route.plural not in CLUSTER_SCOPED:
            if meta.get("namespace") and route.namespace and meta["namespace"] != route.namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            meta["namespace"] = route.namespace or meta.get("namespace") or "default"
            if meta["namespace"] not in {k[3] for k in self._objects if k[1] == "namespaces"} | {
                "default"
            }:
                raise ApiError(404, "NotFound", f'namespaces "{meta["namespace"]}" not found')
        obj.setdefault("apiVersion", route.api_version)
        obj.setdefault("kind", KINDS.get(route.plural, route.plural))
        if route.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        if route.plural == "secrets" and "stringData" in obj:
            import base64

            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        return obj

    def _create(self, route: Route, body: Any) -> tuple[int, dict[str, Any]]:
        obj = self._prepare(route, body)
        key = (
            route.group,
            route.plural,
            obj["metadata"].get("namespace", "") if route.plural not in CLUSTER_SCOPED else "",
            obj["metadata"]["name"],
        )
        if key in self._objects:
            raise ApiError(
                409, "AlreadyExists", f'{route.plural} "{obj["metadata"]["name"]}" already exists'
            )
        if route.plural in STATUS_SUBRESOURCE and route.plural != "namespaces":
            obj.pop("status", None)
        stored = self._store(key, obj, created=True)
        self.writes.append(("create", obj["kind"], obj["metadata"]["name"]))
        self._react(route.plural, stored)
        return 201, copy.deepcopy(self._objects[key])

    def _replace(self, route: Route, key: tuple, body: Any) -> tuple[int, dict[str, Any]]:
        live = self._objects.get(key)
        if live is None:
            raise self._not_found(route)
        obj = self._prepare(route, body)
        sent_rv = obj["metadata"].get("resourceVersion")
        if sent_rv and sent_rv != live["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {route.plural} "{route.name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        if route.subresource == "status":
            new = copy.deepcopy(live)
            new["status"] = obj.get("status")
        else:
            new = obj
            if route.plural in STATUS_SUBRESOURCE and "status" in live:
                new["status"] = live["status"]
        self._store(key, new)
        self.writes.append(("update", new["kind"], route.name or ""))
        return 200, copy.deepcopy(self._objects[key])

    def _patch(
        self, route: Route, key: tuple, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        content_type = headers.get("content-type", "")
        live = self._objects.get(key)
        if live is not None and live["metadata"].get("deletionTimestamp"):
            raise ApiError(409, "Conflict", f'{route.plural} "{route.name}" is being deleted')
        dry_run = query.get("dryRun") == "All"
        if content_type.startswith("application/apply-patch"):
            manager = query.get("fieldManager")
            if not manager:
                raise ApiError(
                    400, "BadRequest", "PATCH with apply requires a fieldManager query parameter"
                )
            applied = self._prepare(route, self._parse_body(headers, body))
            if applied["metadata"]["name"] != route.name:
                raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
            if route.plural in STATUS_SUBRESOURCE and route.subresource != "status":
                applied.pop("status", None) if route.plural != "namespaces" else None
            previous = self._applied.get((key, manager), {})
            if live is None:
                new = applied
            else:
                new = copy.deepcopy(live)
                _prune(new, previous, applied)
                new = _merge(new, applied)
            if dry_run:
                return 200, new
            created = live is None
            self._applied[(key, manager)] = applied
            before_rv = None if created else live["metadata"]["resourceVersion"]
            stored = self._store(key, new, created=created)
            if stored["metadata"]["resourceVersion"] != before_rv:
                self.writes.append(("apply", stored["kind"], route.name or ""))
                self._react(route.plural, stored)
            return (201 if created else 200), copy.deepcopy(self._objects[key])
        if live is None:
            raise self._not_found(route)
        patch = self._parse_body(headers, body)
        if content_type.startswith("application/json-patch"):
            try:
                new = jsonpatch.apply_patch(live, patch)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise ApiError(422, "Invalid", str(exc)) from exc
        else:  # merge-patch and strategic-merge-patch (lists replaced: enough here)
            new = _merge(live, patch)
        if route.subresource == "status":
            only_status = copy.deepcopy(live)
            only_status["status"] = new.get("status")
            new = only_status
        if dry_run:
            return 200, new
        self._store(key, new)
        self.writes.append(("patch", live["kind"], route.name or ""))
        return 200, copy.deepcopy(self._objects[key])

    def _delete(self, route: Route, key: tuple) -> tuple[int, dict[str, Any]]:
        obj = self._objects.pop(key, None)
        if obj is None:
            raise self._not_found(route)
        self.writes.append(("delete", obj["kind"], route.name or ""))
        if route.plural == "namespaces":  # namespace deletion takes everything in it
            for other in [k for k in self._objects if k[2] == route.name]:
                del self._objects[other]
        return 200, obj

    def _delete_collection(self, route: Route, query: dict[str, str]) -> tuple[int, dict]:
        listing = self._list(route, query)
        for obj in listing["items"]:
            ns = "" if route.plural in CLUSTER_SCOPED else obj["metadata"].get("namespace", "")
            self._objects.pop((route.group, route.plural, ns, obj["metadata"]["name"]), None)
        return 200, listing

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and fault.matches(method, path):
                    fault.times -= 1
                    return fault
        return None

    def calls(self) -> Counter[str]:
        return Counter(f"{m} {p}" for m, p, _ in self.requests)


class _Handler(BaseHTTPRequestHandler):
    emulator: EmulatedCluster
    protocol_version = "HTTP/1.1"
    # One buffered write per response and no Nagle: otherwise every keep-alive request
    # waits ~40 ms on delayed ACKs.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the log
        pass

    def _serve(self) -> None:
        cluster = self.emulator
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        cluster.request_count += 1
        fault = cluster.take_fault(self.command, split.path)
        if fault is not None:
            if fault.reset:
                cluster.requests.append((self.command, split.path, 0))
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.delay_s:
                time.sleep(fault.delay_s)
            else:
                reason = {
                    429: "TooManyRequests",
                    409: "Conflict",
                    403: "Forbidden",
                    422: "Invalid",
                }.get(fault.status, "InternalError")
                self._send(fault.status, _status_body(fault.status, reason, fault.message))
                cluster.requests.append((self.command, split.path, fault.status))
                return
        try:
            code, payload = cluster.handle(self.command, split.path, query, headers, body)
        except ApiError as exc:
            code, payload = exc.code, _status_body(exc.code, exc.reason, exc.message)
        cluster.requests.append((self.command, split.path, code))
        self._send(code, payload)

    def _send(self, code: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


@contextmanager
def running_cluster(**kwargs: Any) -> Iterator[EmulatedCluster]:
    cluster = EmulatedCluster(**kwargs).start()
    try:
        yield cluster
    finally:
        cluster.stop()


__all__ = ["BEHAVIOURS", "EmulatedCluster", "Fault", "running_cluster"]
