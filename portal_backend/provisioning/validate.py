"""Strict schema validation of rendered objects against the real Kubernetes schemas."""

from __future__ import annotations

from typing import Any

import kubernetes_validate

# The oldest Kubernetes minor the generated bundles promise to run on.
DEFAULT_KUBERNETES_VERSION = "1.29.0"
# CRDs (Prometheus operator) have no schema in kubernetes-validate: named, not failed.
CRD_GROUPS = ("monitoring.coreos.com/",)


def validate_objects(
    objects: list[dict[str, Any]], version: str = DEFAULT_KUBERNETES_VERSION
) -> list[str]:
    """Every problem as ``Kind/name: path: message``; empty when all objects are valid."""
    problems: list[str] = []
    for obj in objects:
        label = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        if str(obj.get("apiVersion", "")).startswith(CRD_GROUPS):
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(root)"
            problems.append(f"{label}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{label}: no schema for {obj.get('apiVersion')} {obj.get('kind')}")
    return problems
