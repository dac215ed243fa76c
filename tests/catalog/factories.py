"""Entity builders for catalog tests."""

from __future__ import annotations

from typing import Any


def component(name: str, **spec: Any) -> dict:
    metadata: dict[str, Any] = {"name": name}
    for key in ("tags", "annotations", "labels", "title", "description", "namespace"):
        if key in spec:
            metadata[key] = spec.pop(key)
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": metadata,
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a", **spec},
    }


def group(name: str, **spec: Any) -> dict:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": name},
        "spec": {"type": "team", "children": [], **spec},
    }


def system(name: str, owner: str = "team-a") -> dict:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "System",
        "metadata": {"name": name},
        "spec": {"owner": owner},
    }


def resource(name: str, **spec: Any) -> dict:
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Resource",
        "metadata": {"name": name},
        "spec": {"type": "database", "owner": "team-a", **spec},
    }
