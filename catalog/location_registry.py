"""Registered locations: register (with a dry run), refresh, delete, and which location
manages an entity (Backstage's ``LocationService``).

A location's entities are written through ``EntityWrites``; the entities a refresh no
longer finds are flagged ``backstage.io/orphan`` (kept, as in Backstage). Works on the
caller's session and never commits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from catalog.documents import ORPHAN, encode
from catalog.entity_writes import EntityWrites, check_owner, prepare
from catalog.errors import (
    ConflictError,
    ErrorDetail,
    InputError,
    NotFoundError,
    PayloadTooLargeError,
)
from catalog.gc_pause import collector_paused
from catalog.location_tree import read_tree
from catalog.locations import (
    LocationPolicy,
    check_target,
    location_key,
    read_mlflow,
    read_target,
)
from catalog.mlflow_source import MLFLOW
from catalog.refs import canonical_ref, ref_of
from catalog.search import map_fields
from catalog.tables import CatalogEntity, CatalogLocation
from catalog.validation import validate_batch
from catalog.yaml_loader import load_documents


def location_view(location: CatalogLocation) -> dict[str, str]:
    return {"id": location.id, "type": location.type, "target": location.target}


def location_status(location: CatalogLocation) -> dict[str, Any]:
    """When the location's last refresh (or registration) finished, and its error."""
    refreshed = location.refreshed_at
    if refreshed is not None and refreshed.tzinfo is None:
        refreshed = refreshed.replace(tzinfo=UTC)  # SQLite hands back naive UTC
    return {
        "lastRefreshAt": refreshed.isoformat() if refreshed else None,
        "lastRefreshError": location.last_error,
    }


class LocationRegistry:
    def __init__(
        self,
        session: Session,
        *,
        policy: LocationPolicy | None = None,
        writes: EntityWrites | None = None,
    ) -> None:
        self.session = session
        self.policy = policy or LocationPolicy()
        self.writes = writes or EntityWrites(session)

    def read_location_tree(
        self, location_type: str, target: str, *, registered: bool
    ) -> tuple[list[Any], list[str]]:
        """The validated entities of a location and of every location its Location
        entities lead to (``catalog.location_tree``), with the key each was read from.

        All or nothing: one unreadable or invalid location anywhere fails the whole tree.
        """

        total = 0

        def read(kind: str, path: str, is_root: bool) -> list[Any]:
            nonlocal total
            key = location_key(kind, path)
            if kind == MLFLOW:
                # A model registry answers entities (catalog.mlflow_source), within what
                # is left of the tree's byte budget.
                documents, size = read_mlflow(path, self.policy, self.policy.max_tree_bytes - total)
                total += size
                validate_batch(documents, "documents", source=key)
                return documents
            text = read_target(kind, path, self.policy, registered=registered and is_root)
            total += len(text)
            if total > self.policy.max_tree_bytes:
                raise PayloadTooLargeError(
                    f"the locations reached from {location_key(location_type, target)} hold "
                    f"more than {self.policy.max_tree_bytes} bytes in all (at {key}); "
                    "split it into several registrations"
                )
            documents = load_documents(text, source=key, max_bytes=self.policy.max_bytes)
            validate_batch(documents, "documents", source=key)
            return documents

        entities: list[Any] = []
        sources: list[str] = []
        first_seen: dict[str, str] = {}
        tree = read_tree(location_type, target, self.policy, read)
        for location in tree:
            for index, document in enumerate(location.documents):
                entities.append(document)
                sources.append(location.key)
                if len(tree) == 1:
                    continue  # one location: validate_batch already refused repeats
                ref = ref_of(document)
                where = f"{location.key} documents[{index}]"
                if ref in first_seen:
                    raise InputError(
                        f"{ref} is defined twice in the locations of "
                        f"{location_key(location_type, target)}: {first_seen[ref]} and {where}; "
                        "nothing was written",
                        [ErrorDetail(f"documents[{index}].metadata.name", f"{ref} twice")],
                    )
                first_seen[ref] = where
        return entities, sources

    @collector_paused()
    def add_location(
        self,
        type: str,
        target: str,
        *,
        dry_run: bool = False,
        managed_by: str | None = None,
        owner_group: str | Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Register a location and import its entities (or, with dry_run, only check)."""
        check_target(type, target, self.policy)
        key = location_key(type, target)
        existing = self.session.scalars(
            select(CatalogLocation).where(CatalogLocation.location_key == key)
        ).first()
        if existing is not None and not dry_run:
            raise ConflictError(f"location {key} is already registered (id {existing.id})")
        entities, sources = self.read_location_tree(type, target, registered=False)
        if dry_run:
            if owner_group is not None:
                for index, entity in enumerate(entities):
                    check_owner(entity, owner_group, f"documents[{index}].spec.owner")
            view = (
                location_view(existing)
                if existing
                else {"id": str(uuid.uuid4()), "type": type, "target": target}
            )
            preview = [prepare(e, None, key, s) for e, s in zip(entities, sources, strict=True)]
            return {"exists": existing is not None, "location": view, "entities": preview}
        location = CatalogLocation(
            id=str(uuid.uuid4()),
            type=type,
            target=target,
            location_key=key,
            managed_by=managed_by,
            created_at=datetime.now(UTC),
            refreshed_at=datetime.now(UTC),
        )
        self.session.add(location)
        self.session.flush()
        stored = self.writes.upsert_entities(
            entities, location_key=key, owner_group=owner_group, _validated=True, _sources=sources
        )
        return {"location": location_view(location), "entities": stored}

    def _location(self, location_id: str) -> CatalogLocation:
        location = self.session.get(CatalogLocation, location_id)
        if location is None:
            raise NotFoundError(f"no location with id {location_id}")
        return location

    def get_location(self, location_id: str) -> dict[str, Any]:
        return location_view(self._location(location_id))

    def list_locations(self) -> list[dict[str, Any]]:
        rows = self.session.scalars(select(CatalogLocation).order_by(CatalogLocation.created_at))
        return [location_view(r) for r in rows]

    def list_locations_with_status(self) -> list[dict[str, Any]]:
        """``[{data: location, status: {...}}]``: GET /locations with each location's
        refresh record (Backstage's clients read ``data`` and ignore the rest)."""
        rows = self.session.scalars(select(CatalogLocation).order_by(CatalogLocation.created_at))
        return [{"data": location_view(r), "status": location_status(r)} for r in rows]

    @collector_paused()
    def refresh_location(self, location_id: str) -> dict[str, Any]:
        """Re-read a location: upsert what is there, flag what disappeared as orphan.

        A location that no longer reads or validates keeps its entities as they were,
        and the error is raised for the caller to report.
        """
        location = self._location(location_id)
        entities, sources = self.read_location_tree(location.type, location.target, registered=True)
        refs = set(
            self.writes.write_validated(
                entities, location_key=location.location_key, owner_group=None, sources=sources
            )
        )
        orphaned = self.flag_orphans(location.location_key, refs)
        location.refreshed_at = datetime.now(UTC)
        location.last_error = None
        return {"location": location_view(location), "entities": sorted(refs), "orphaned": orphaned}

    def flag_orphans(self, key: str, present: set[str]) -> list[str]:
        """Flag ``backstage.io/orphan`` on the entities of location ``key`` that are not
        in ``present`` (refs); answers the refs newly flagged."""
        rows = self.session.execute(
            select(CatalogEntity.entity_ref, CatalogEntity.body).where(
                CatalogEntity.location_key == key
            )
        ).all()
        orphans: list[dict[str, Any]] = []
        for ref, body in rows:
            if ref in present:
                continue
            entity = json.loads(body)
            annotations = entity["metadata"].setdefault("annotations", {})
            if annotations.get(ORPHAN) == "true":
                continue
            annotations[ORPHAN] = "true"
            orphans.append(entity)
        for entity in orphans:
            # Orphans keep their location (so a refresh that brings them back clears it).
            body = {k: v for k, v in entity.items() if k != "relations"}
            uid = body["metadata"]["uid"]
            text, etag = encode(body, uid)
            self.session.execute(
                update(CatalogEntity)
                .where(CatalogEntity.uid == uid)
                .values(
                    body=text,
                    etag=etag,
                    metadata_maps=map_fields(body),
                    updated_at=datetime.now(UTC),
                )
            )
            # The orphan flag is an annotation: metadata_maps, not search rows, changes.
        return sorted(ref_of(e) for e in orphans)

    def delete_location(
        self, location_id: str, *, owner_group: str | Sequence[str] | None = None
    ) -> None:
        """Remove a location and the entities it manages."""
        location = self._location(location_id)
        rows = self.session.execute(
            select(CatalogEntity.uid, CatalogEntity.body).where(
                CatalogEntity.location_key == location.location_key
            )
        ).all()
        if owner_group is not None:
            for row in rows:
                check_owner(json.loads(row.body), owner_group, "location")
        self.writes.delete_uids([r.uid for r in rows])
        self.session.delete(location)
        self.session.flush()

    def location_id_of(self, ref: str) -> str | None:
        """The id of the registered location an entity came from; 404 if no such entity."""
        canonical = canonical_ref(ref)
        row = self.session.execute(
            select(CatalogEntity.location_key).where(CatalogEntity.entity_ref == canonical)
        ).first()
        if row is None:
            raise NotFoundError(f"no entity {canonical}")
        if row.location_key is None:
            return None
        return self.session.scalar(
            select(CatalogLocation.id).where(CatalogLocation.location_key == row.location_key)
        )

    def find_location(self, location_type: str, target: str) -> dict[str, Any] | None:
        location = self.session.scalars(
            select(CatalogLocation).where(
                CatalogLocation.location_key == location_key(location_type, target)
            )
        ).first()
        return location_view(location) if location else None

    def location_of(self, ref: str) -> dict[str, Any] | None:
        """The location that manages an entity, if any."""
        key = self.session.scalar(
            select(CatalogEntity.location_key).where(CatalogEntity.entity_ref == canonical_ref(ref))
        )
        if key is None:
            return None
        location = self.session.scalars(
            select(CatalogLocation).where(CatalogLocation.location_key == key)
        ).first()
        return location_view(location) if location else None

    def location_ids(self) -> list[str]:
        return list(self.session.scalars(select(CatalogLocation.id)))
