"""``GET /entities/by-name/{kind}/{namespace}/{name}/ancestry``: where an entity came from.

Backstage's catalog-client ``getEntityAncestors``. An entity read from a location that a
``Location`` entity pointed at has that Location entity as its parent, which may itself
come from a location another Location entity named, up to the registered location.
Parents are found from what is stored: among the Location entities of the same
registration (same ``managed-by-origin-location``), those whose ``spec.target(s)``,
resolved against the file they were read from as the import resolved them, name the
entity's ``managed-by-location``. Entities read straight from a registered location have
no parent entity here (Backstage would show a generated Location entity, which this
catalog does not create).
"""

from __future__ import annotations

import fnmatch
import glob
from collections import deque
from typing import Any

from sqlalchemy import func, select

from catalog.documents import MANAGED_BY_LOCATION, MANAGED_BY_ORIGIN_LOCATION
from catalog.entity_reads import EntityReads
from catalog.errors import PortalError
from catalog.location_tree import _targets_of, resolve_target
from catalog.locations import location_key
from catalog.refs import ref_of
from catalog.tables import CatalogEntity

MAX_ANCESTORS = 100  # location trees are at most a few levels deep (LocationPolicy.max_depth)


def _names(parent: dict[str, Any], read_from: str, wanted: str) -> bool:
    """Whether Location entity ``parent`` (read from ``read_from``) names ``wanted``."""
    parent_type, _, parent_target = read_from.partition(":")
    spec = parent.get("spec") or {}
    for _, target in _targets_of(parent):
        if not isinstance(target, str):
            continue
        child_type = spec.get("type") or parent_type
        try:
            resolved = resolve_target(parent_type, parent_target, child_type, target)
        except PortalError:
            continue
        if location_key(child_type, resolved) == wanted:
            return True
        wanted_type, _, wanted_target = wanted.partition(":")
        if child_type == "file" == wanted_type and glob.has_magic(resolved):
            if fnmatch.fnmatchcase(wanted_target, resolved):
                return True
    return False


def _location_entities(reads: EntityReads, origin: str) -> list[dict[str, Any]]:
    """The Location entities of the registration ``origin``."""
    rows = reads.session.scalars(
        select(CatalogEntity.entity_ref).where(
            CatalogEntity.location_key == origin, func.lower(CatalogEntity.kind) == "location"
        )
    ).all()
    return [parent for parent in reads.get_by_refs(list(rows)) if parent is not None]


def _parents(
    reads: EntityReads, entity: dict[str, Any], read: dict[str, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """``entity``'s parent Location entities; ``read``: those of each registration so far
    (an entity and its ancestors share one, read once)."""
    annotations = entity.get("metadata", {}).get("annotations") or {}
    read_from = annotations.get(MANAGED_BY_LOCATION)
    origin = annotations.get(MANAGED_BY_ORIGIN_LOCATION)
    if not read_from or not origin or read_from == origin:
        return []
    if origin not in read:
        read[origin] = _location_entities(reads, origin)
    found = []
    for parent in read[origin]:
        parent_from = (parent["metadata"].get("annotations") or {}).get(MANAGED_BY_LOCATION, "")
        if parent_from and _names(parent, parent_from, read_from):
            found.append(parent)
    return found


def ancestry(reads: EntityReads, ref: str) -> dict[str, Any] | None:
    """``{rootEntityRef, items: [{entity, parentEntityRefs}]}``, the entity first; None
    when there is no such entity."""
    root = reads.get_by_ref(ref)
    if root is None:
        return None
    items: list[dict[str, Any]] = []
    queue, seen = deque([root]), {ref_of(root)}
    read: dict[str, list[dict[str, Any]]] = {}
    while queue and len(items) < MAX_ANCESTORS:
        entity = queue.popleft()
        parents = _parents(reads, entity, read)
        refs = [ref_of(p) for p in parents]
        items.append({"entity": entity, "parentEntityRefs": refs})
        for parent, parent_ref in zip(parents, refs, strict=True):
            if parent_ref not in seen:
                seen.add(parent_ref)
                queue.append(parent)
    return {"rootEntityRef": ref_of(root), "items": items}
