"""Teams created from the portal: a Group entity kept as ``catalog-info.yaml`` in the
team's own repository on this portal (``repos/<team>/_catalog.git``), registered under
that file's location like anything the scaffolder registers.

So a fresh portal can go from nothing to a created service without a terminal (the
rag-service form needs an owning Group), and the team stays an ordinary catalog entity
backed by a file anyone can read in the repository browser and change with git.
The repository name starts with ``_``, which publish:git refuses, so no service can
ever take it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ConflictError, ErrorDetail, InputError
from catalog.service import CatalogService
from catalog.validation import validate_entity
from portal_backend.db import session_scope
from portal_backend.git_hosts import catalog_files
from portal_backend.settings import Settings

TEAM_REPO = "_catalog"
CATALOG_FILE = "catalog-info.yaml"
LOCATION = "backstage.io/managed-by-location"
ORIGIN = "backstage.io/managed-by-origin-location"
TEAM_NAME = re.compile(r"^[a-z0-9]([-a-z0-9_.]{0,61}[a-z0-9])?$")
NAME_RULE = (
    "lowercase letters, digits, dashes, dots or underscores; start and end with a letter "
    "or digit; at most 63 characters"
)


def group_entity(name: str, title: str, description: str, parent: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if title:
        metadata["title"] = title
    if description:
        metadata["description"] = description
    spec: dict[str, Any] = {"type": "team", "children": []}
    if title:
        spec["profile"] = {"displayName": title}
    if parent:
        spec["parent"] = parent
    return {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": metadata,
        "spec": spec,
    }


def _check(session: Session, name: str, title: str, description: str, parent: str | None) -> None:
    problems = []
    if not TEAM_NAME.match(name):
        problems.append(ErrorDetail("name", NAME_RULE))
    if len(title) > 100:
        problems.append(ErrorDetail("title", "at most 100 characters"))
    if len(description) > 500:
        problems.append(ErrorDetail("description", "at most 500 characters"))
    catalog = CatalogService(session)
    if parent and catalog.get_by_name("group", "default", parent) is None:
        problems.append(ErrorDetail("parent", f"there is no team named {parent} in the catalog"))
    if problems:
        raise InputError("the team cannot be created as given", problems)
    if catalog.get_by_name("group", "default", name) is not None:
        raise ConflictError(
            f"there is already a team named {name}",
            [ErrorDetail("name", "taken: choose another name, or use the existing team")],
        )


def create_team(
    settings: Settings,
    factory: sessionmaker[Session],
    *,
    name: str,
    title: str = "",
    description: str = "",
    parent: str | None = None,
    created_by: str,
) -> dict[str, Any]:
    """Commit the team's catalog-info.yaml, then register it; returns the stored Group.
    Nothing is left behind when either half fails."""
    name, title, description = name.strip(), title.strip(), description.strip()
    parent = (parent or "").strip() or None
    entity = group_entity(name, title, description, parent)
    with session_scope(factory) as session:
        _check(session, name, title, description, parent)
    problems = validate_entity(entity)
    if problems:
        raise InputError("the team cannot be created as given", problems)
    written = catalog_files.commit_file(
        settings,
        name,
        TEAM_REPO,
        CATALOG_FILE,
        yaml.safe_dump(entity, sort_keys=False),
        message=f"Team {name}, created in the portal",
        author=created_by,
        description=f"Catalog entities of team {name}",
    )
    location = f"url:{written.contents_url}"
    annotations = entity["metadata"].setdefault("annotations", {})
    annotations[LOCATION] = annotations[ORIGIN] = location
    try:
        with session_scope(factory) as session:
            stored = CatalogService(session).upsert_entities([entity], location_key=location)
    except Exception:
        catalog_files.undo(written)
        raise
    return stored[0]
