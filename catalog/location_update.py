"""``PUT /locations/{id}``: point a registered location at another type or target.

Backstage's catalog-client ``updateLocation``. The location keeps its id; its entities
move with it. The new target is read and validated like a registration, under the
location's refresh lock and in one transaction: entities found there are written under
the new location key, the location's entities that the new target no longer holds are
flagged orphan (as a refresh would), and any failure (unreadable or invalid target, an
entity another location manages, a group token updating what its group does not own)
leaves the location and its entities as they were.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from catalog.entity_writes import check_owner
from catalog.errors import ConflictError, NotFoundError
from catalog.location_registry import LocationRegistry, location_view
from catalog.locations import LocationPolicy, check_target, location_key
from catalog.refresh import location_lock
from catalog.tables import CatalogEntity, CatalogLocation


def update_location(
    factory: sessionmaker[Session],
    location_id: str,
    location_type: str,
    target: str,
    policy: LocationPolicy,
    *,
    owner_group: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """The updated location ``{id, type, target}``; raises a 4xx PortalError otherwise."""
    check_target(location_type, target, policy)
    new_key = location_key(location_type, target)
    with location_lock(factory, location_id) as held, factory.begin() as session:
        if not held:
            raise ConflictError(
                f"location {location_id} is being refreshed right now; try again when it finishes"
            )
        location = session.get(CatalogLocation, location_id)
        if location is None:
            raise NotFoundError(f"no location with id {location_id}")
        other = session.scalars(
            select(CatalogLocation.id).where(
                CatalogLocation.location_key == new_key, CatalogLocation.id != location_id
            )
        ).first()
        if other is not None:
            raise ConflictError(f"location {new_key} is already registered (id {other})")
        registry = LocationRegistry(session, policy=policy)
        old_key = location.location_key
        if owner_group is not None:
            # As for DELETE: a group token changes only a location whose entities it owns.
            for (body,) in session.execute(
                select(CatalogEntity.body).where(CatalogEntity.location_key == old_key)
            ):
                check_owner(json.loads(body), owner_group, "location")
        entities, sources = registry.read_location_tree(location_type, target, registered=False)
        # The location's entities follow it to the new key, so the write below updates
        # them in place (same uid) instead of refusing them as another location's.
        session.execute(
            update(CatalogEntity)
            .where(CatalogEntity.location_key == old_key)
            .values(location_key=new_key)
        )
        location.type, location.target, location.location_key = location_type, target, new_key
        session.flush()
        present = set(
            registry.writes.write_validated(
                entities, location_key=new_key, owner_group=owner_group, sources=sources
            )
        )
        registry.flag_orphans(new_key, present)
        location.refreshed_at, location.last_error = datetime.now(UTC), None
        return location_view(location)
