"""CatalogService: the catalog's Python API in one object, for callers that use several
parts of it on one session (the CLI, other domains, tests).

A thin facade over the three parts, split as Backstage's catalog backend is:

- ``EntityReads`` (``catalog.entity_reads``): by-query, listings, facets, by-name/uid/refs;
- ``EntityWrites`` (``catalog.entity_writes``): upserts, deletes, status sections;
- ``LocationRegistry`` (``catalog.location_registry``): register, refresh, orphans, delete.

Every method here is one of theirs; code that needs only one part can use it directly.
Works on the caller's SQLAlchemy session and never commits.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from catalog.entity_reads import EntityReads
from catalog.entity_writes import EntityWrites, check_owner
from catalog.location_registry import LocationRegistry
from catalog.locations import LocationPolicy
from catalog.validation import validate_entity


class CatalogService:
    def __init__(self, session: Session, *, policy: LocationPolicy | None = None) -> None:
        self.session = session
        self.reads = EntityReads(session)
        self.writes = EntityWrites(session)
        self.locations = LocationRegistry(session, policy=policy, writes=self.writes)
        self.policy = self.locations.policy

        self.validate_entity = validate_entity
        self.check_owner = check_owner

        self.get_by_ref = self.reads.get_by_ref
        self.get_by_name = self.reads.get_by_name
        self.get_by_uid = self.reads.get_by_uid
        self.get_by_refs = self.reads.get_by_refs
        self.query_refs = self.reads.query_refs
        self.query_entities = self.reads.query_entities
        self.iter_entities = self.reads.iter_entities
        self.iter_json = self.reads.iter_json
        self.next_cursor_after = self.reads.next_cursor_after
        self.facets = self.reads.facets

        self.upsert_entities = self.writes.upsert_entities
        self.write_validated = self.writes.write_validated
        self.delete_by_ref = self.writes.delete_by_ref
        self.delete_by_uid = self.writes.delete_by_uid
        self.set_status = self.writes.set_status

        self.read_location_tree = self.locations.read_location_tree
        self.add_location = self.locations.add_location
        self.get_location = self.locations.get_location
        self.list_locations = self.locations.list_locations
        self.list_locations_with_status = self.locations.list_locations_with_status
        self.refresh_location = self.locations.refresh_location
        self.flag_orphans = self.locations.flag_orphans
        self.delete_location = self.locations.delete_location
        self.location_id_of = self.locations.location_id_of
        self.find_location = self.locations.find_location
        self.location_of = self.locations.location_of
        self.location_ids = self.locations.location_ids
