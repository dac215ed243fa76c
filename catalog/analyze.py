"""``POST /analyze-location``: what registering a location would bring, before doing it.

Backstage's catalog-client ``analyzeLocation`` (the "Register existing component" page).
Reads only, writes nothing. A target naming a YAML file is read as a location (its
Location entities followed, every document validated: an invalid file answers 400 with
its problems, as registering it would); any other target is taken as a folder or
repository root, in which ``catalogFilename`` (default ``catalog-info.yaml``) is looked
for. Found entities come back in ``existingEntityFiles`` with the location they were read
from and whether that location is already registered. When there is no catalog file,
``generateEntities`` proposes a Component named after the target's last path segment,
with the fields the user still has to fill in (``spec.owner``; the name too when none
can be derived).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

from catalog.errors import ErrorDetail, InputError
from catalog.location_registry import LocationRegistry
from catalog.locations import LOCATION_TYPES, check_target
from catalog.mlflow_source import MLFLOW
from catalog.validation import NAME_RE

DEFAULT_CATALOG_FILENAME = "catalog-info.yaml"


def _location_spec(body: dict[str, Any]) -> tuple[str, str]:
    location = body.get("location")
    if not isinstance(location, dict):
        raise InputError(
            "body must be {location: {type, target}, catalogFilename?}",
            [ErrorDetail("location", "required object")],
        )
    location_type = location.get("type", "url")
    target = location.get("target")
    if location_type not in LOCATION_TYPES:
        raise InputError(
            f"location.type must be one of {', '.join(LOCATION_TYPES)}",
            [ErrorDetail("location.type", "'url', 'file' or 'mlflow'")],
        )
    if not isinstance(target, str) or not target.strip():
        raise InputError(
            "location.target is required", [ErrorDetail("location.target", "required string")]
        )
    return location_type, target.strip()


def _catalog_filename(body: dict[str, Any]) -> str:
    name = body.get("catalogFilename") or DEFAULT_CATALOG_FILENAME
    if not isinstance(name, str) or "/" in name or "\\" in name or name in (".", ".."):
        raise InputError(
            "catalogFilename must be a file name without folders, e.g. catalog-info.yaml",
            [ErrorDetail("catalogFilename", "a plain file name")],
        )
    return name


def _is_yaml(target: str) -> bool:
    path = urlsplit(target).path if "://" in target else target
    return path.lower().endswith((".yaml", ".yml"))


def _in_folder(location_type: str, target: str, filename: str) -> str:
    if location_type == "url":
        parts = urlsplit(target)
        base = parts._replace(path=parts.path.rstrip("/") + "/", query="", fragment="")
        return urljoin(base.geturl(), filename)
    return str(PurePosixPath(target) / filename)


def suggested_name(target: str) -> str | None:
    """An entity name from the target's last path segment (``.../payments-api.git`` ->
    ``payments-api``), or None when no valid name comes out of it."""
    path = urlsplit(target).path if "://" in target else target
    segment = PurePosixPath(path.rstrip("/")).name
    segment = re.sub(r"\.git$", "", segment).lower()
    segment = re.sub(r"[^a-z0-9_.-]+", "-", segment).strip("-_.")[:63].strip("-_.")
    return segment if segment and NAME_RE.match(segment) else None


def analyze_location(registry: LocationRegistry, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InputError("body must be an object", [ErrorDetail("", "an object")])
    location_type, target = _location_spec(body)
    filename = _catalog_filename(body)
    check_target(location_type, target, registry.policy)  # refused targets: 4xx, no read
    # An MLflow registry is read whole, as registering it would.
    whole = _is_yaml(target) or location_type == MLFLOW
    candidate = target if whole else _in_folder(location_type, target, filename)
    try:
        entities, sources = registry.read_location_tree(location_type, candidate, registered=False)
    except InputError as exc:
        # Only "the catalog file in the folder cannot be read" (an error on the root's
        # own target) means there is none; a named YAML file that cannot be read, and an
        # invalid file or nested location, are the answer.
        if candidate == target or [detail.path for detail in exc.details] != ["target"]:
            raise
        return {
            "existingEntityFiles": [],
            "generateEntities": [_generated(location_type, target, filename)],
        }
    files = []
    registered: dict[str, bool] = {}  # per source file: a file holds many entities
    for entity, source in zip(entities, sources, strict=True):
        source_type, _, source_target = source.partition(":")
        if source not in registered:
            registered[source] = registry.find_location(source_type, source_target) is not None
        files.append(
            {
                "location": {"type": source_type, "target": source_target},
                "isRegistered": registered[source],
                "entity": entity,
            }
        )
    return {"existingEntityFiles": files, "generateEntities": []}


def _generated(location_type: str, target: str, filename: str) -> dict[str, Any]:
    name = suggested_name(target)
    fields: list[dict[str, Any]] = [
        {
            "field": "spec.owner",
            "state": "needsUserInput",
            "value": None,
            "description": "The Group or User that owns the component (e.g. group:default/team-a)",
        }
    ]
    if name is None:
        fields.insert(
            0,
            {
                "field": "metadata.name",
                "state": "needsUserInput",
                "value": None,
                "description": "No valid entity name could be derived from the target",
            },
        )
    metadata: dict[str, Any] = {
        "annotations": {"backstage.io/source-location": f"{location_type}:{target}"},
        "description": f"No {filename} found at {target}; proposed by the catalog's analyzer",
    }
    if name is not None:
        metadata["name"] = name
    return {
        "entity": {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": metadata,
            "spec": {"type": "service", "lifecycle": "experimental"},
        },
        "fields": fields,
    }
