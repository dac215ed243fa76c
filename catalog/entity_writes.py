"""Entity writes: upserts, deletes and status sections, with their search rows and
relations (Backstage's entity provider mutations and processing results in one place).

Works on the caller's SQLAlchemy session and never commits: the caller's unit of work
decides, so a failed import leaves nothing half-written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.bulk import (
    DatabaseIntegrityError,
    any_of,
    chunks,
    insert_rows,
    refresh_statistics,
)
from catalog.documents import (
    MANAGED_BY_LOCATION,
    MANAGED_BY_ORIGIN_LOCATION,
    ORPHAN,
    encode,
    stored_document,
)
from catalog.errors import ConflictError, ErrorDetail, InputError, NotAllowedError, NotFoundError
from catalog.gc_pause import collector_paused
from catalog.hydration import with_relations
from catalog.refs import RefError, canonical_ref, normalize_ref, parse_ref, ref_of
from catalog.relations import forward_relations
from catalog.search import map_fields
from catalog.search_index import delete_search, insert_search
from catalog.tables import CatalogEntity, CatalogRelation, new_uid
from catalog.validation import validate_batch

_ENTITY_COLUMNS = (
    "uid",
    "entity_ref",
    "kind",
    "namespace",
    "name",
    "etag",
    "body",
    "location_key",
    "metadata_maps",
    "created_at",
    "updated_at",
)


def check_owner(entity: dict[str, Any], owner_group: str | Sequence[str], path: str) -> None:
    """NotAllowedError (naming ``path``) unless ``entity`` is owned by ``owner_group``
    (one ref, or several: a user and its groups): what a caller bound to owners may
    write or delete."""
    owners = [owner_group] if isinstance(owner_group, str) else list(owner_group)
    allowed = sorted({normalize_ref(o, "group") for o in owners})
    group = ", ".join(allowed) or "nobody"
    owner = (entity.get("spec") or {}).get("owner")
    namespace = (entity.get("metadata") or {}).get("namespace") or "default"
    actual = None
    if isinstance(owner, str):
        try:
            actual = str(parse_ref(owner, default_kind="group", default_namespace=namespace))
        except RefError:
            actual = None
    if actual not in allowed:
        raise NotAllowedError(
            f"this caller may only write entities owned by {group}; "
            f"{ref_of(entity)} is owned by {actual or 'nobody'}",
            [ErrorDetail(path, f"spec.owner must be one of {group}")],
        )


def prepare(
    entity: dict[str, Any],
    previous: dict[str, Any] | None,
    location: str | None,
    source: str | None = None,
) -> dict[str, Any]:
    """The document as stored. ``location`` is the registered location (the origin),
    ``source`` the location of its tree the entity was read from (default: the origin);
    ``previous``: the stored row it replaces (its status sections are kept)."""
    # Copies of the levels that change; spec and the rest are only read.
    body = {k: v for k, v in entity.items() if k != "relations"}
    metadata = dict(body["metadata"])
    body["metadata"] = metadata
    metadata.pop("uid", None)
    metadata.pop("etag", None)
    metadata.setdefault("namespace", "default")
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(ORPHAN, None)
    if location:
        annotations[MANAGED_BY_LOCATION] = source or location
        annotations.setdefault(MANAGED_BY_ORIGIN_LOCATION, location)
    if annotations or "annotations" in metadata:
        metadata["annotations"] = annotations
    # Status sections written by the portal survive a re-import of the YAML.
    if previous:
        old_status = json.loads(previous["body"]).get("status") or {}
        if old_status:
            body["status"] = {**old_status, **(body.get("status") or {})}
    return body


class EntityWrites:
    def __init__(self, session: Session) -> None:
        self.session = session
        # What the last write_validated stored: (uid, ref, JSON text or the document itself).
        self._stored: list[tuple[str, str, str | dict[str, Any]]] = []
        # Per ref the last write_validated wrote: the relations its spec names (its stored rows).
        self._forward: dict[str, list[tuple[str, str]]] = {}

    @collector_paused()
    def upsert_entities(
        self,
        entities: list[dict[str, Any]],
        *,
        location_key: str | None = None,
        owner_group: str | Sequence[str] | None = None,
        _validated: bool = False,
        _sources: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Validate all, then insert or update them in one go; returns the stored entities."""
        if not _validated:
            validate_batch(entities, "entities")
        self.write_validated(
            entities, location_key=location_key, owner_group=owner_group, sources=_sources
        )
        # The documents just written (or found unchanged), not read back: only the
        # relations other entities' specs add (the reverse direction) need the database.
        return with_relations(self.session, self._stored, self._forward)

    def _existing(self, refs: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(list(refs)):
            rows = self.session.connection().execute(
                select(
                    CatalogEntity.entity_ref,
                    CatalogEntity.uid,
                    CatalogEntity.etag,
                    CatalogEntity.location_key,
                    CatalogEntity.body,
                    CatalogEntity.created_at,
                ).where(any_of(self.session, CatalogEntity.entity_ref, chunk))
            )
            for ref, uid, etag, loc, body, created in rows:
                found[ref] = {
                    "uid": uid,
                    "etag": etag,
                    "location_key": loc,
                    "body": body,
                    "created_at": created,
                }
        return found

    def write_validated(
        self,
        entities: Sequence[dict[str, Any]],
        *,
        location_key: str | None,
        owner_group: str | Sequence[str] | None,
        sources: Sequence[str] | None = None,
    ) -> list[str]:
        """Insert or update already validated entities (``validate_batch`` or
        ``LocationRegistry.read_location_tree``) in the session's transaction; answers
        their refs.

        ``sources``: per entity, the key of the location (in ``location_key``'s tree)
        it was read from; it becomes the entity's managed-by-location annotation.
        ConflictError when one is managed by another location; NotAllowedError when
        ``owner_group`` does not own one (as stored or as written)."""
        now = datetime.now(UTC)
        refs = [ref_of(e) for e in entities]
        existing = self._existing(refs)
        if owner_group is not None:
            for index, entity in enumerate(entities):
                check_owner(entity, owner_group, f"entities[{index}].spec.owner")
                if refs[index] in existing:
                    check_owner(
                        json.loads(existing[refs[index]]["body"]),
                        owner_group,
                        f"entities[{index}]",
                    )
        conflicts = [
            ErrorDetail(
                f"entities[{i}]",
                f"{ref} is already managed by {existing[ref]['location_key']}",
            )
            for i, ref in enumerate(refs)
            if location_key
            and ref in existing
            and existing[ref]["location_key"]
            and existing[ref]["location_key"] != location_key
        ]
        if conflicts:
            raise ConflictError(
                "entities already registered from another location: "
                + "; ".join(d.message for d in conflicts),
                conflicts,
            )
        new_rows: list[tuple[Any, ...]] = []
        changed: list[dict[str, Any]] = []
        # (uid, ref, stored JSON text) of the entities being replaced: what to delete.
        replaced: list[tuple[str, str, str]] = []
        written: list[tuple[str, str, dict[str, Any]]] = []
        # (uid, ref, stored JSON text or document) of every entity, for upsert_entities'
        # answer.
        stored: list[tuple[str, str, str | dict[str, Any]]] = []
        for index, (entity, ref) in enumerate(zip(entities, refs, strict=True)):
            previous = existing.get(ref)
            body = prepare(entity, previous, location_key, sources[index] if sources else None)
            uid = previous["uid"] if previous else new_uid()
            text, etag = encode(body, uid)
            if previous and previous["etag"] == etag:
                stored.append((uid, ref, previous["body"]))
                continue  # unchanged: keep uid, etag, search rows and relations as they are
            parsed = parse_ref(ref)
            keep_location = location_key or (previous or {}).get("location_key")
            if previous:
                replaced.append((uid, ref, previous["body"]))
                changed.append(
                    {
                        "b_uid": uid,
                        "etag": etag,
                        "body": text,
                        "location_key": keep_location,
                        "metadata_maps": map_fields(body),
                        "updated_at": now,
                    }
                )
            else:
                new_rows.append(
                    (
                        uid,
                        ref,
                        parsed.kind,
                        parsed.namespace,
                        parsed.name,
                        etag,
                        text,
                        keep_location,
                        map_fields(body),
                        now,
                        now,
                    )
                )
            written.append((uid, ref, body))
            stored.append((uid, ref, stored_document(body, uid, etag)))
        self._store(new_rows, changed, written, replaced)
        self._stored = stored
        return refs

    def _store(
        self,
        new_rows: list[tuple[Any, ...]],
        changed: list[dict[str, Any]],
        written: list[tuple[str, str, dict[str, Any]]],
        replaced: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        table = CatalogEntity.__table__
        if changed:
            for chunk in chunks(replaced):
                self._delete_index_rows(chunk)
            self.session.connection().execute(
                update(table)
                .where(table.c.uid == bindparam("b_uid"))
                .values(
                    etag=bindparam("etag"),
                    body=bindparam("body"),
                    location_key=bindparam("location_key"),
                    metadata_maps=bindparam("metadata_maps"),
                    updated_at=bindparam("updated_at"),
                ),
                changed,
            )
        try:
            insert_rows(self.session, table, _ENTITY_COLUMNS, new_rows)
        except (IntegrityError, DatabaseIntegrityError) as exc:
            # Another transaction created one of these entities after we looked.
            raise ConflictError(
                "an entity in this batch was created concurrently by another writer; retry"
            ) from exc
        relations: list[tuple[str, str, str, str]] = []
        self._forward = {}
        for uid, ref, body in written:
            forward = forward_relations(body)
            relations.extend((uid, s, t, r) for s, t, r in forward)
            self._forward[ref] = [(t, r) for _, t, r in forward]
        written_rows = insert_search(self.session, [(uid, body) for uid, _, body in written])
        refresh_statistics(self.session, written_rows)
        insert_rows(
            self.session,
            CatalogRelation.__table__,
            ("originating_uid", "source_ref", "type", "target_ref"),
            relations,
        )

    def _delete_index_rows(self, stored: Sequence[tuple[str, str, str]]) -> None:
        """Delete the search rows and relations of entities as stored: (uid, ref, JSON).

        Search rows are deleted by their primary key, recomputed from the stored
        document (``search_rows`` is deterministic; a change to it comes with a
        migration that rewrites the rows): an index on ``entity_uid`` only for deletes
        cost ~15% of an import's database time. An entity's relation rows all have its
        ref as source (only forward rows are stored), so they are one primary-key range
        each; no index on the originating uid.
        """
        uids = [uid for uid, _, _ in stored]
        refs = [ref for _, ref, _ in stored]
        delete_search(self.session, [(uid, text) for uid, _, text in stored])
        self.session.execute(
            delete(CatalogRelation).where(
                any_of(self.session, CatalogRelation.source_ref, refs),
                any_of(self.session, CatalogRelation.originating_uid, uids),
            )
        )

    def delete_uids(self, uids: Sequence[str]) -> None:
        """Delete entities with their search rows and relations."""
        for chunk in chunks(list(uids)):
            stored = self.session.execute(
                select(CatalogEntity.uid, CatalogEntity.entity_ref, CatalogEntity.body).where(
                    any_of(self.session, CatalogEntity.uid, chunk)
                )
            ).all()
            self._delete_index_rows([(uid, ref, body) for uid, ref, body in stored])
            self.session.execute(
                delete(CatalogEntity).where(any_of(self.session, CatalogEntity.uid, chunk))
            )

    def _uid_for_delete(self, where: Any, owner_group: str | Sequence[str] | None) -> str | None:
        row = self.session.execute(
            select(CatalogEntity.uid, CatalogEntity.body).where(where)
        ).first()
        if row is None:
            return None
        if owner_group is not None:
            check_owner(json.loads(row.body), owner_group, "entity")
        return str(row.uid)

    def delete_by_ref(self, ref: str, *, owner_group: str | Sequence[str] | None = None) -> bool:
        uid = self._uid_for_delete(CatalogEntity.entity_ref == canonical_ref(ref), owner_group)
        if uid is None:
            return False
        self.delete_uids([uid])
        return True

    def delete_by_uid(self, uid: str, *, owner_group: str | Sequence[str] | None = None) -> bool:
        found = self._uid_for_delete(CatalogEntity.uid == uid, owner_group)
        if found is None:
            return False
        self.delete_uids([found])
        return True

    def set_status(self, ref: str, section: str, value: dict[str, Any]) -> dict[str, Any]:
        """Replace ``status.<section>`` of an entity (filterable as ``status.<section>.*``)."""
        if not isinstance(section, str) or not section or "." in section:
            raise InputError("status section must be a non-empty name without dots")
        if not isinstance(value, dict):
            raise InputError(f"status.{section} must be an object")
        canonical = canonical_ref(ref)
        row = self.session.execute(
            select(CatalogEntity.uid, CatalogEntity.body).where(
                CatalogEntity.entity_ref == canonical
            )
        ).first()
        if row is None:
            raise NotFoundError(f"no entity {canonical}")
        body = json.loads(row.body)
        body["status"] = {**(body.get("status") or {}), section: value}
        text, etag = encode(body, row.uid)
        self.session.execute(
            update(CatalogEntity)
            .where(CatalogEntity.uid == row.uid)
            .values(
                body=text,
                etag=etag,
                updated_at=datetime.now(UTC),
            )
        )
        delete_search(self.session, [(row.uid, row.body)])
        insert_search(self.session, [(row.uid, body)])
        return with_relations(self.session, [(row.uid, canonical, text)])[0]
