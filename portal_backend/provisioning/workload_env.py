"""The environment a container of a rendered bundle would get from Kubernetes.

Kubernetes builds a container's environment from ``envFrom`` (ConfigMaps, Secrets, in
order), then ``env`` (literal values with ``$(VAR)`` references, ``configMapKeyRef``,
``secretKeyRef``, ``fieldRef``). The local runtime starts the generated API with exactly
this environment (only addresses differ), and the tests use it to start a rendered API
as its Deployment would, so what runs locally is what the cluster runs.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from portal_backend.provisioning.plan import pod_spec

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\$")


class WorkloadEnvError(Exception):
    """A required ConfigMap, Secret or key is missing: the pod would not start."""


@dataclass
class ContainerEnvironment:
    values: dict[str, str] = field(default_factory=dict)
    # Names whose value comes from a Secret: never logged.
    secret_names: set[str] = field(default_factory=set)
    # The container's command and args as the pod spec gives them.
    command: list[str] = field(default_factory=list)
    image: str = ""
    ports: dict[str, int] = field(default_factory=dict)


def find_workload(
    objects: list[dict[str, Any]], component: str, kinds: tuple[str, ...] = ("Deployment",)
) -> dict[str, Any]:
    """The workload labelled ``app.kubernetes.io/component: <component>``."""
    for obj in objects:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if obj.get("kind") in kinds and labels.get("app.kubernetes.io/component") == component:
            return obj
    raise WorkloadEnvError(f"the bundle has no {'/'.join(kinds)} for component {component!r}")


def _data_of(obj: dict[str, Any]) -> dict[str, str]:
    data = {k: str(v) for k, v in (obj.get("data") or {}).items()}
    if obj.get("kind") == "Secret":
        data = {k: base64.b64decode(v).decode() for k, v in data.items()}
        data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return data


def _expand(value: str, env: dict[str, str]) -> str:
    # Kubernetes' rule: $(VAR) of an already defined variable is replaced, $$ is a
    # literal $, an unknown $(VAR) is left as written.
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(replace, value)


def container_environment(
    objects: list[dict[str, Any]],
    workload: dict[str, Any],
    *,
    container: str | None = None,
    pod_fields: dict[str, str] | None = None,
) -> ContainerEnvironment:
    """The environment of ``container`` (an init container too; default: the first
    container) of ``workload``.

    ``objects`` holds the ConfigMaps and Secrets to read (the rendered bundle plus the
    Secrets the provisioner creates from its store). ``pod_fields`` answers ``fieldRef``
    paths such as ``metadata.namespace``.
    """
    spec = pod_spec(workload) or {}
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    chosen = next((c for c in containers if container is None or c.get("name") == container), None)
    name = workload["metadata"]["name"]
    if chosen is None:
        raise WorkloadEnvError(f"{workload['kind']}/{name} has no container {container!r}")
    sources = {(o.get("kind"), o["metadata"]["name"]): o for o in objects if "metadata" in o}
    out = ContainerEnvironment(
        command=[*(chosen.get("command") or []), *(chosen.get("args") or [])],
        image=str(chosen.get("image") or ""),
        ports={p.get("name", str(p["containerPort"])): int(p["containerPort"])
               for p in chosen.get("ports") or []},
    )  # fmt: skip

    def source(kind: str, ref: dict[str, Any]) -> dict[str, str] | None:
        found = sources.get((kind, ref.get("name")))
        if found is None:
            if ref.get("optional"):
                return None
            raise WorkloadEnvError(
                f"{workload['kind']}/{name} needs {kind}/{ref.get('name')}, which neither the "
                "bundle nor the portal's secret store provides"
            )
        return _data_of(found)

    for item in chosen.get("envFrom") or []:
        prefix = item.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in item:
                entries = source(kind, item[key]) or {}
                out.values.update({prefix + k: v for k, v in entries.items()})
                if kind == "Secret":
                    out.secret_names.update(prefix + k for k in entries)
    for item in chosen.get("env") or []:
        var = item["name"]
        if "value" in item:
            out.values[var] = _expand(str(item["value"]), out.values)
            continue
        value_from = item.get("valueFrom") or {}
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if key in value_from:
                ref = value_from[key]
                data = source(kind, ref)
                if data is None:
                    break
                if ref["key"] not in data:
                    if ref.get("optional"):
                        break
                    raise WorkloadEnvError(
                        f"{kind}/{ref['name']} has no key {ref['key']!r} "
                        f"(needed by {var} of {workload['kind']}/{name})"
                    )
                out.values[var] = data[ref["key"]]
                if kind == "Secret":
                    out.secret_names.add(var)
        if "fieldRef" in value_from:
            path = value_from["fieldRef"].get("fieldPath", "")
            if pod_fields and path in pod_fields:
                out.values[var] = pod_fields[path]
    return out
