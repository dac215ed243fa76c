"""The entity page's frame, as Backstage lays it out: a header band (kind, type, title,
owner, lifecycle) and tabs, each its own URL, so a page shows one thing at a time.

Reads only: entities from the catalog service, the repository from the entity's own
location annotation, API definitions from the catalog's API entities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy.orm import Session

from catalog.refs import RefError, parse_ref
from catalog.service import CatalogService
from portal_backend.git_hosts import repo_browser
from portal_backend.settings import Settings
from portal_backend.web import links

LOCATION = "backstage.io/managed-by-location"
SOURCE_LOCATION = "backstage.io/source-location"
RAG_TABS = ("deployment", "sla", "evaluation", "scorecard", "ask")
TAB_LABELS = {
    "overview": "Overview",
    "deployment": "Deployment",
    "sla": "SLA & cost",
    "evaluation": "Evaluation",
    "scorecard": "Scorecard",
    "ask": "Ask",
    "api": "API",
    "docs": "Docs",
    "dependencies": "Dependencies",
}
# Relations the Dependencies tab lists, with how a person says them.
DEPENDENCY_RELATIONS = {
    "dependsOn": "Depends on",
    "dependencyOf": "Depended on by",
    "providesApi": "Provides API",
    "consumesApi": "Consumes API",
    "hasPart": "Has part",
    "partOf": "Part of",
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


@dataclass(frozen=True)
class Repository:
    """Where an entity's files live: this portal's repository (browsable), or elsewhere."""

    url: str  # a page a browser can open
    label: str
    hosted: repo_browser.HostedRepo | None = None
    ref: str = ""


def entity_ref(entity: dict[str, Any]) -> str:
    meta = entity.get("metadata") or {}
    kind = str(entity.get("kind", "")).lower()
    return f"{kind}:{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def owner_ref(entity: dict[str, Any]) -> str | None:
    owner = (entity.get("spec") or {}).get("owner")
    namespace = (entity.get("metadata") or {}).get("namespace") or "default"
    if not owner:
        return None
    try:
        return str(parse_ref(str(owner), default_kind="group", default_namespace=namespace))
    except RefError:
        return None


def related_entities(session: Session, entity: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every entity this one names (relations and owner), by ref, in one read."""
    refs = {r["targetRef"] for r in entity.get("relations") or []}
    owner = owner_ref(entity)
    if owner:
        refs.add(owner)
    ordered = sorted(refs)
    found = CatalogService(session).get_by_refs(ordered)
    return {ref: e for ref, e in zip(ordered, found, strict=True) if e is not None}


def title_of(ref: str, related: dict[str, dict[str, Any]]) -> str:
    """An entity's title where it has one, else its name (never the whole ref)."""
    entity = related.get(ref)
    if entity is not None:
        meta = entity.get("metadata") or {}
        return str(meta.get("title") or meta.get("name"))
    return ref.rpartition("/")[2] or ref


def repository_of(settings: Settings, entity: dict[str, Any]) -> Repository | None:
    """The repository an entity's catalog-info.yaml was registered from."""
    annotations = (entity.get("metadata") or {}).get("annotations") or {}
    location = str(annotations.get(LOCATION) or "").removeprefix("url:")
    if location.startswith("file://"):
        found = repo_browser.repo_of_url(settings, location)
        if found is not None:
            repo, ref, _path = found
            return Repository(links.repo_page(repo.owner, repo.name), repo.slug, repo, ref)
    source = str(annotations.get(SOURCE_LOCATION) or "").removeprefix("url:")
    for candidate in (source, location):
        if candidate.startswith(("https://", "http://")):
            return Repository(candidate, candidate)
    return None


def tabs_for(entity: dict[str, Any], *, rag: bool, repository: Repository | None) -> list[str]:
    kind = str(entity.get("kind", "")).lower()
    spec = entity.get("spec") or {}
    tabs = ["overview"]
    if rag:
        tabs += list(RAG_TABS)
    if kind == "api" or spec.get("providesApis"):
        tabs.append("api")
    if rag or (repository is not None and repository.hosted is not None):
        tabs.append("docs")
    if any(r["type"] in DEPENDENCY_RELATIONS for r in entity.get("relations") or []):
        tabs.append("dependencies")
    return tabs


def dependencies(
    entity: dict[str, Any], related: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Relation groups for the Dependencies tab: label and the entities, by title."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for relation in entity.get("relations") or []:
        if relation["type"] not in DEPENDENCY_RELATIONS:
            continue
        ref = relation["targetRef"]
        target = related.get(ref) or {}
        groups.setdefault(relation["type"], []).append(
            {
                "ref": ref,
                "title": title_of(ref, related),
                "kind": target.get("kind") or ref.partition(":")[0].title(),
                "type": (target.get("spec") or {}).get("type"),
                "description": (target.get("metadata") or {}).get("description"),
                "missing": not target,
            }
        )
    return [
        {"label": label, "items": sorted(groups[key], key=lambda i: i["title"])}
        for key, label in DEPENDENCY_RELATIONS.items()
        if key in groups
    ]


def _operations(definition: str) -> list[dict[str, str]]:
    """Method, path and summary of each operation of an OpenAPI document."""
    try:
        document = yaml.safe_load(definition)
    except yaml.YAMLError:
        return []
    paths = document.get("paths") if isinstance(document, dict) else None
    operations = []
    for path, item in (paths or {}).items():
        for method, operation in (item or {}).items() if isinstance(item, dict) else []:
            if method in HTTP_METHODS and isinstance(operation, dict):
                operations.append(
                    {
                        "method": method.upper(),
                        "path": str(path),
                        "summary": str(operation.get("summary") or ""),
                    }
                )
    return operations


def apis(entity: dict[str, Any], related: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The API entities shown on the API tab: the entity itself (kind API) or those it
    provides, each with its definition and the operations in it."""
    if str(entity.get("kind", "")).lower() == "api":
        found = [entity]
    else:
        refs = [r["targetRef"] for r in entity.get("relations") or [] if r["type"] == "providesApi"]
        found = [related[ref] for ref in refs if ref in related]
    shown = []
    for api in found:
        spec = api.get("spec") or {}
        definition = spec.get("definition")
        text = definition if isinstance(definition, str) else yaml.safe_dump(definition or "")
        shown.append(
            {
                "ref": entity_ref(api),
                "title": (api.get("metadata") or {}).get("title") or api["metadata"]["name"],
                "type": spec.get("type"),
                "description": (api.get("metadata") or {}).get("description"),
                "operations": _operations(text) if spec.get("type") == "openapi" else [],
                "definition": text,
            }
        )
    return shown
