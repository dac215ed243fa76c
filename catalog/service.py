"""CatalogService: the catalog's Python API (HTTP routes, CLI and other domains use it).

It works on the caller's SQLAlchemy session and never commits: the caller's unit of
work decides, so a failed import leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog import query as engine
from catalog.bulk import (
    DatabaseIntegrityError,
    any_of,
    copy_text,
    delete_search_rows,
    escape_copy,
    insert_rows,
    refresh_statistics,
)
from catalog.cursor import Cursor
from catalog.errors import (
    ConflictError,
    ErrorDetail,
    InputError,
    NotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
)
from catalog.facet_counts import inserted_deltas
from catalog.filters import (
    Conditions,
    compile_filters,
    conditions_from_mapping,
    full_text_condition,
    full_text_matches,
    parse_filters,
    search_only_count,
)
from catalog.gc_pause import collector_paused
from catalog.location_tree import read_tree
from catalog.locations import LocationPolicy, check_target, location_key, read_target
from catalog.predicates import compile_predicate
from catalog.refs import RefError, normalize_ref, parse_ref, ref_of
from catalog.relations import REVERSE, forward_relations
from catalog.search import map_fields, search_rows
from catalog.tables import (
    COUNTED_KEYS,
    CatalogEntity,
    CatalogFacetCount,
    CatalogLocation,
    CatalogRelation,
    CatalogSearch,
    new_uid,
)
from catalog.validation import validate_entity
from catalog.yaml_loader import load_documents

MANAGED_BY_LOCATION = "backstage.io/managed-by-location"
MANAGED_BY_ORIGIN_LOCATION = "backstage.io/managed-by-origin-location"
ORPHAN = "backstage.io/orphan"
_CHUNK = 1000
_FULL_TEXT_LIST = 5000

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


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def encode(body: dict, uid: str) -> tuple[str, str]:
    """The stored JSON text of an entity and its etag (a hash of everything but uid/etag).

    The document is serialised once; uid and etag are spliced into ``metadata`` after
    hashing. ``apiVersion`` and ``kind`` (validated, so free of JSON syntax) come first,
    which makes the first ``"metadata":{`` the entity's own.
    """
    metadata = {k: v for k, v in body["metadata"].items() if k not in ("uid", "etag")}
    ordered: dict[str, Any] = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": metadata,
    }
    ordered.update((k, v) for k, v in body.items() if k not in ordered and k != "relations")
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)
    etag = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    head = '"metadata":{'
    at = text.index(head) + len(head)
    stamp = f'"uid":"{uid}","etag":"{etag}"' + ("," if metadata else "")
    return text[:at] + stamp + text[at:], etag


def stored_document(body: dict, uid: str, etag: str) -> dict:
    """What ``encode(body, uid)`` stores, as a new dict (its nested values are shared
    with ``body``): an import answers with the documents it wrote without parsing
    their JSON text back (~20 us an entity)."""
    metadata = {"uid": uid, "etag": etag}
    metadata.update((k, v) for k, v in body["metadata"].items() if k not in ("uid", "etag"))
    document: dict[str, Any] = {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": metadata,
    }
    document.update((k, v) for k, v in body.items() if k not in document and k != "relations")
    return document


def project(entity: dict, fields: Sequence[str] | None) -> dict:
    """Only the dotted ``fields`` of ``entity`` (all of it when none are given)."""
    if not fields:
        return entity
    result: dict = {}
    for path in fields:
        parts = path.split(".")
        source: Any = entity
        for part in parts:
            if not isinstance(source, dict) or part not in source:
                source = _MISSING
                break
            source = source[part]
        if source is _MISSING:
            continue
        target = result
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = source
    return result


_MISSING = object()


_SEARCH_COLUMNS = ("key", "value", "kind", "entity_uid", "original_value")
_COUNTED = frozenset(COUNTED_KEYS)


def _search_tuples(uid: str, body: dict) -> list[tuple[str, ...]]:
    kind = str(body.get("kind", "")).lower()
    return [(k, v, kind, uid, o) for k, v, o in search_rows(body)]


def _delete_search(session: Session, stored: Iterable[tuple[str, str]]) -> None:
    """Delete the search rows of (uid, stored JSON text) pairs: the rows ``search_rows``
    makes of each document, by primary key (``bulk.delete_search_rows``)."""
    delete_search_rows(
        session, [row[:4] for uid, text in stored for row in _search_tuples(uid, json.loads(text))]
    )


def _insert_search(session: Session, entities: Sequence[tuple[str, dict]]) -> int:
    """Write the search rows of (uid, document) pairs; returns how many rows.

    Every search row goes in through here. On PostgreSQL the COPY text is built per
    entity in one pass (values are checked for COPY's special characters per entity,
    not per value), and the facet-count deltas go in the same transaction (no insert
    trigger counts them; see ``inserted_deltas``).
    """
    table = CatalogSearch.__table__  # type: ignore[attr-defined]
    if session.get_bind().dialect.name != "postgresql":
        rows = [row for uid, body in entities for row in _search_tuples(uid, body)]
        insert_rows(session, table, _SEARCH_COLUMNS, rows)
        return len(rows)
    chunks: list[str] = []
    counted: list[tuple[str, str, str]] = []
    total = 0
    for uid, body in entities:
        kind = str(body.get("kind", "")).lower()
        rows = search_rows(body)
        if not rows:
            continue
        total += len(rows)
        tail = f"\t{kind}\t{uid}\t"
        chunk = "\n".join([f"{k}\t{v}{tail}{o}" for k, v, o in rows])
        if (
            "\\" in chunk
            or "\r" in chunk
            or chunk.count("\t") != 4 * len(rows)
            or chunk.count("\n") != len(rows) - 1
        ):
            chunk = "\n".join(
                "\t".join(escape_copy(value) for value in (k, v, kind, uid, o)) for k, v, o in rows
            )
        chunks.append(chunk)
        counted.extend((k, v, kind) for k, v, _ in rows if k in _COUNTED)
    if chunks:
        copy_text(session, table, _SEARCH_COLUMNS, "\n".join(chunks) + "\n")
        insert_rows(
            session,
            CatalogFacetCount.__table__,  # type: ignore[attr-defined]
            ("key", "value", "kind", "n"),
            inserted_deltas(counted),
        )
    return total


def _order_list(order_by: Sequence[tuple[str, str]] | None) -> list[list[str]] | None:
    """Order pairs as the cursor stores them (JSON lists); None when not given."""
    return [[field, order] for field, order in order_by] if order_by else None


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


class CatalogService:
    def __init__(self, session: Session, *, policy: LocationPolicy | None = None) -> None:
        self.session = session
        self.policy = policy or LocationPolicy()
        # What the last write_validated stored: (uid, ref, JSON text or the document itself).
        self._stored: list[tuple[str, str, str | dict]] = []
        # Per ref the last write_validated wrote: the relations its spec names (its stored rows).
        self._forward: dict[str, list[tuple[str, str]]] = {}

    # -- validation -------------------------------------------------------------------

    def validate_entity(self, entity: Any) -> list[ErrorDetail]:
        return validate_entity(entity)

    def _validate_all(
        self, entities: Sequence[Any], prefix: str, source: str | None = None
    ) -> None:
        """All-or-nothing: any invalid entity (or duplicate ref) rejects the whole batch."""
        problems: list[ErrorDetail] = []
        seen: dict[str, int] = {}
        valid: list[str] = []
        for index, entity in enumerate(entities):
            where = f"{prefix}[{index}]"
            found = validate_entity(entity)
            problems += [
                ErrorDetail(f"{where}.{d.path}" if d.path else where, d.message) for d in found
            ]
            if found:
                continue
            ref = ref_of(entity)
            if ref in seen:
                problems.append(
                    ErrorDetail(
                        f"{where}.metadata.name",
                        f"{ref} appears twice (also at {prefix}[{seen[ref]}]); "
                        "names are unique per kind and namespace, ignoring case",
                    )
                )
            else:
                valid.append(f"{where} ({ref})")
            seen[ref] = index
        if not problems:
            return
        bad = len({p.path.split("]")[0] for p in problems})
        what = "documents" if source else "entities"
        raise InputError(
            (f"{source}: " if source else "")
            + f"{bad} of {len(entities)} {what} are invalid, so nothing was written. Valid: "
            + (", ".join(valid[:20]) or "none")
            + (" ..." if len(valid) > 20 else "")
            + ". Invalid: "
            + "; ".join(f"{p.path}: {p.message}" for p in problems[:10]),
            problems,
        )

    # -- writes -----------------------------------------------------------------------

    @collector_paused()
    def upsert_entities(
        self,
        entities: list[dict],
        *,
        location_key: str | None = None,
        owner_group: str | None = None,
        _validated: bool = False,
        _sources: Sequence[str] | None = None,
    ) -> list[dict]:
        """Validate all, then insert or update them in one go; returns the stored entities."""
        if not _validated:
            self._validate_all(entities, "entities")
        self.write_validated(
            entities, location_key=location_key, owner_group=owner_group, sources=_sources
        )
        # The documents just written (or found unchanged), not read back: only the
        # relations other entities' specs add (the reverse direction) need the database.
        return self._hydrate(self._stored, self._forward)

    def _existing(self, refs: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(list(refs)):
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

    def check_owner(self, entity: dict, owner_group: str, path: str) -> None:
        """NotAllowedError (naming ``path``) unless ``entity`` is owned by ``owner_group``:
        what a group-scoped token may write or delete."""
        group = normalize_ref(owner_group, "group")
        owner = (entity.get("spec") or {}).get("owner")
        namespace = (entity.get("metadata") or {}).get("namespace") or "default"
        actual = None
        if isinstance(owner, str):
            try:
                actual = str(parse_ref(owner, default_kind="group", default_namespace=namespace))
            except RefError:
                actual = None
        if actual != group:
            raise NotAllowedError(
                f"this token may only write entities owned by {group}; "
                f"{ref_of(entity)} is owned by {actual or 'nobody'}",
                [ErrorDetail(path, f"spec.owner must be {group}")],
            )

    def write_validated(
        self,
        entities: Sequence[dict],
        *,
        location_key: str | None,
        owner_group: str | None,
        sources: Sequence[str] | None = None,
    ) -> list[str]:
        """Insert or update already validated entities (``validate_entity`` or
        ``read_location_tree``) in the session's transaction; answers their refs.

        ``sources``: per entity, the key of the location (in ``location_key``'s tree)
        it was read from; it becomes the entity's managed-by-location annotation.
        ConflictError when one is managed by another location; NotAllowedError when
        ``owner_group`` does not own one (as stored or as written)."""
        now = datetime.now(UTC)
        refs = [ref_of(e) for e in entities]
        existing = self._existing(refs)
        if owner_group:
            for index, entity in enumerate(entities):
                self.check_owner(entity, owner_group, f"entities[{index}].spec.owner")
                if refs[index] in existing:
                    self.check_owner(
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
        written: list[tuple[str, str, dict]] = []
        # (uid, ref, stored JSON text or document) of every entity, for upsert_entities'
        # answer.
        stored: list[tuple[str, str, str | dict]] = []
        for index, (entity, ref) in enumerate(zip(entities, refs, strict=True)):
            previous = existing.get(ref)
            body = self._prepare(
                entity, previous, location_key, sources[index] if sources else None
            )
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

    def _prepare(
        self,
        entity: dict,
        previous: dict[str, Any] | None,
        location: str | None,
        source: str | None = None,
    ) -> dict:
        """The document as stored. ``location`` is the registered location (the origin),
        ``source`` the location of its tree the entity was read from (default: the origin)."""
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

    def _store(
        self,
        new_rows: list[tuple[Any, ...]],
        changed: list[dict[str, Any]],
        written: list[tuple[str, str, dict]],
        replaced: Sequence[tuple[str, str, str]] = (),
    ) -> None:
        table = CatalogEntity.__table__  # type: ignore[attr-defined]
        if changed:
            for chunk in _chunks(replaced):
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
        written_rows = _insert_search(self.session, [(uid, body) for uid, _, body in written])
        refresh_statistics(self.session, written_rows)
        insert_rows(
            self.session,
            CatalogRelation.__table__,  # type: ignore[attr-defined]
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
        _delete_search(self.session, [(uid, text) for uid, _, text in stored])
        self.session.execute(
            delete(CatalogRelation).where(
                any_of(self.session, CatalogRelation.source_ref, refs),
                any_of(self.session, CatalogRelation.originating_uid, uids),
            )
        )

    def _delete_uids(self, uids: Sequence[str]) -> None:
        for chunk in _chunks(list(uids)):
            stored = self.session.execute(
                select(CatalogEntity.uid, CatalogEntity.entity_ref, CatalogEntity.body).where(
                    any_of(self.session, CatalogEntity.uid, chunk)
                )
            ).all()
            self._delete_index_rows([(uid, ref, body) for uid, ref, body in stored])
            self.session.execute(
                delete(CatalogEntity).where(any_of(self.session, CatalogEntity.uid, chunk))
            )

    def _row_for_delete(self, where: Any, owner_group: str | None) -> CatalogEntity | None:
        row = self.session.execute(
            select(CatalogEntity.uid, CatalogEntity.body).where(where)
        ).first()
        if row is None:
            return None
        if owner_group:
            self.check_owner(json.loads(row.body), owner_group, "entity")
        return row  # type: ignore[return-value]

    def delete_by_ref(self, ref: str, *, owner_group: str | None = None) -> bool:
        row = self._row_for_delete(CatalogEntity.entity_ref == self._ref(ref), owner_group)
        if row is None:
            return False
        self._delete_uids([row.uid])
        return True

    def delete_by_uid(self, uid: str, *, owner_group: str | None = None) -> bool:
        row = self._row_for_delete(CatalogEntity.uid == uid, owner_group)
        if row is None:
            return False
        self._delete_uids([row.uid])
        return True

    def set_status(self, ref: str, section: str, value: dict) -> dict:
        """Replace ``status.<section>`` of an entity (filterable as ``status.<section>.*``)."""
        if not isinstance(section, str) or not section or "." in section:
            raise InputError("status section must be a non-empty name without dots")
        if not isinstance(value, dict):
            raise InputError(f"status.{section} must be an object")
        canonical = self._ref(ref)
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
        _delete_search(self.session, [(row.uid, row.body)])
        _insert_search(self.session, [(row.uid, body)])
        return self._hydrate([(row.uid, canonical, text)])[0]

    # -- reads ------------------------------------------------------------------------

    @staticmethod
    def _ref(ref: str) -> str:
        try:
            return normalize_ref(ref)
        except RefError as exc:
            raise InputError(f"invalid entity ref {ref!r}: {exc}") from exc

    def _relation_pairs(
        self, refs: Sequence[str], forward: Mapping[str, list[tuple[str, str]]] | None = None
    ) -> dict[str, list[tuple[str, str]]]:
        """Per ref, its sorted (type, target) relations: the rows it is the source of,
        and the reverse of the rows it is the target of (only forward rows are stored).

        ``forward``: refs whose own rows the caller knows (it just wrote them); only
        their reverse direction is read.
        """
        forward = forward or {}
        found: dict[str, set[tuple[str, str]]] = defaultdict(set)
        connection = self.session.connection()
        columns = (CatalogRelation.source_ref, CatalogRelation.type, CatalogRelation.target_ref)
        for ref in refs:
            if ref in forward:
                found[ref].update(forward[ref])
        for chunk in _chunks([ref for ref in refs if ref not in forward]):
            for source, type_, target in connection.execute(
                select(*columns).where(any_of(self.session, CatalogRelation.source_ref, chunk))
            ):
                found[source].add((type_, target))
        for chunk in _chunks(list(refs)):
            for source, type_, target in connection.execute(
                select(*columns).where(any_of(self.session, CatalogRelation.target_ref, chunk))
            ):
                found[target].add((REVERSE.get(type_, type_), source))
        return {ref: sorted(pairs) for ref, pairs in found.items()}

    def _relations_for(
        self, refs: Sequence[str], forward: Mapping[str, list[tuple[str, str]]] | None = None
    ) -> dict[str, list[dict[str, str]]]:
        return {
            ref: [{"type": t, "targetRef": target} for t, target in pairs]
            for ref, pairs in self._relation_pairs(refs, forward).items()
        }

    def _hydrate(
        self,
        rows: Iterable[tuple[str, str, str | dict]],
        forward: Mapping[str, list[tuple[str, str]]] | None = None,
    ) -> list[dict]:
        rows = list(rows)
        relations = self._relations_for([ref for _, ref, _ in rows], forward)
        result = []
        for _uid, ref, body in rows:
            entity = json.loads(body) if isinstance(body, str) else body
            entity["relations"] = relations.get(ref, [])
            result.append(entity)
        return result

    def _get_one(self, where: Any) -> dict | None:
        """One entity with its relations in a single query (one round trip, not two).

        The body repeats on each of the entity's relation rows; for one entity with a
        handful of relations that costs less than a second query.
        """
        rows = (
            self.session.connection()
            .execute(
                select(
                    CatalogEntity.body,
                    CatalogEntity.entity_ref,
                    CatalogRelation.source_ref,
                    CatalogRelation.type,
                    CatalogRelation.target_ref,
                )
                .outerjoin(
                    CatalogRelation,
                    or_(
                        CatalogRelation.source_ref == CatalogEntity.entity_ref,
                        CatalogRelation.target_ref == CatalogEntity.entity_ref,
                    ),
                )
                .where(where)
            )
            .all()
        )
        if not rows:
            return None
        entity = json.loads(rows[0].body)
        ref = rows[0].entity_ref
        pairs: set[tuple[str, str]] = set()
        for row in rows:
            if row.type is None:
                continue
            # A row can name the entity as source, target or both (a self-relation).
            if row.source_ref == ref:
                pairs.add((row.type, row.target_ref))
            if row.target_ref == ref:
                pairs.add((REVERSE.get(row.type, row.type), row.source_ref))
        entity["relations"] = [{"type": t, "targetRef": target} for t, target in sorted(pairs)]
        return entity

    def get_by_ref(self, ref: str) -> dict | None:
        return self._get_one(CatalogEntity.entity_ref == self._ref(ref))

    def get_by_name(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.get_by_ref(f"{kind}:{namespace}/{name}")

    def get_by_uid(self, uid: str) -> dict | None:
        return self._get_one(CatalogEntity.uid == uid)

    def get_by_refs(
        self,
        refs: Sequence[str],
        *,
        filters: Sequence[str] = (),
        fields: Sequence[str] = (),
        query: Any = None,
    ) -> list[dict | None]:
        """Entities in the order of ``refs``; None where missing or not matching ``filters``
        (ORed alternatives) and the predicate ``query``."""
        canonical: list[str | None] = []
        for ref in refs:
            try:
                canonical.append(normalize_ref(ref))
            except RefError:
                canonical.append(None)
        wanted = [c for c in canonical if c]
        where = compile_filters(parse_filters(filters))
        if query is not None:
            where = where & compile_predicate(query)
        rows: dict[str, tuple[str, str, str]] = {}
        for chunk in _chunks(sorted(set(wanted))):
            for row in self.session.connection().execute(
                select(CatalogEntity.uid, CatalogEntity.entity_ref, CatalogEntity.body).where(
                    any_of(self.session, CatalogEntity.entity_ref, chunk), where
                )
            ):
                rows[row.entity_ref] = tuple(row)  # type: ignore[assignment]
        hydrated = {e_ref: e for e_ref, e in zip(rows, self._hydrate(rows.values()), strict=True)}
        return [project(hydrated[c], fields) if c in hydrated else None for c in canonical]

    def query_refs(self, filter: Mapping[str, str | Sequence[str] | None]) -> list[str]:
        """Refs of the entities matching every condition (same semantics as the API)."""
        where = compile_filters([conditions_from_mapping(filter)] if filter else [])
        return sorted(self.session.scalars(select(CatalogEntity.entity_ref).where(where)))

    def _where(
        self, filters: Sequence[str] | list[Conditions], term: str | None, fields: Sequence[str]
    ) -> Any:
        alternatives = (
            parse_filters(filters)  # type: ignore[arg-type]
            if all(isinstance(f, str) for f in filters)
            else list(filters)
        )
        where = compile_filters(alternatives)  # type: ignore[arg-type]
        if term and term.strip():
            fields = fields or engine.DEFAULT_FULL_TEXT_FIELDS
            # Find the matches first (one scan of those keys' index ranges). Few matches
            # become a uid list, so sorting and counting them is cheap; as a subquery,
            # the planner would walk the whole name index looking for them.
            matches = list(
                self.session.connection()
                .execute(
                    full_text_matches(term.strip(), fields).distinct().limit(_FULL_TEXT_LIST + 1)
                )
                .scalars()
            )
            if len(matches) <= _FULL_TEXT_LIST:
                where = where & any_of(self.session, CatalogEntity.uid, matches)
            else:  # a broad term: matches are dense, the subquery form finds a page fast
                where = where & full_text_condition(term.strip(), fields)
        return where

    def query_entities(
        self,
        *,
        filters: Sequence[str] = (),
        order_field: str | None = None,
        order: str = "asc",
        term: str | None = None,
        term_fields: Sequence[str] = (),
        cursor: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        fields: Sequence[str] = (),
        include_total: bool = True,
        query: Any = None,
        order_by: Sequence[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """Backstage's ``queryEntities``: {items, totalItems, pageInfo}.

        ``query`` is a predicate object (POST by-query), ANDed with ``filters``.
        ``order_by`` ([(field, asc|desc), ...], first is most significant) replaces
        ``order_field``/``order`` when given.

        ``offset`` only applies to the first page; later pages follow the cursor's keyset.
        """
        size = engine.check_limit(limit, default=20) or 0
        if cursor:
            state = Cursor.decode(cursor)
        else:
            if order not in ("asc", "desc"):
                raise InputError(
                    "order must be 'asc' or 'desc'", [ErrorDetail("orderField", order)]
                )
            state = Cursor(
                filters=list(filters),
                order_field=order_field,
                order=order,
                order_by=_order_list(order_by),
                term=term,
                term_fields=list(term_fields),
                query=query,
            )
        where = self._where(state.filters, state.term, state.term_fields)
        if state.query is not None:
            where = where & compile_predicate(state.query)
        total = state.total
        if total is None and include_total:
            fast = (
                None
                if state.term or state.query is not None
                else search_only_count(parse_filters(state.filters))
            )
            total = engine.count(self.session, where, fast)
        rows = engine.page(
            self.session,
            where,
            order_by=state.sort_spec(),
            position=state.position,
            direction=state.direction,
            limit=size + 1,
            offset=0 if cursor else offset,
        )
        more = len(rows) > size
        if more:
            rows = rows[1:] if state.direction == "prev" else rows[:size]
        page_info: dict[str, str] = {}

        def at(row: engine.Row, direction: str) -> str:
            return Cursor(
                **{
                    **state.__dict__,
                    "position": row.position,
                    "direction": direction,
                    "total": total,
                }
            ).encode()

        if rows:
            has_next = more if state.direction == "next" else True
            started = state.position is not None or (offset > 0 and not cursor)
            has_prev = started if state.direction == "next" else more
            if has_next:
                page_info["nextCursor"] = at(rows[-1], "next")
            if has_prev:
                page_info["prevCursor"] = at(rows[0], "prev")
        items = [
            project(e, fields) for e in self._hydrate((r.uid, r.entity_ref, r.body) for r in rows)
        ]
        result: dict[str, Any] = {"items": items, "pageInfo": page_info}
        if total is not None:
            result["totalItems"] = total
        return result

    def _iter_rows(
        self,
        *,
        filters: Sequence[str],
        order_by: Sequence[tuple[str, str]],
        offset: int,
        limit: int | None,
        after: str | None,
        batch: int,
    ) -> Iterator[list[engine.Row]]:
        """Matching rows in order, in keyset batches (never one huge result set)."""
        position = None
        if after:
            state = Cursor.decode(after, param="after")
            filters, order_by = state.filters, state.sort_spec()
            position = state.position
        where = self._where(filters, None, ())
        remaining = limit
        first = True
        while remaining is None or remaining > 0:
            size = batch if remaining is None else min(batch, remaining)
            rows = engine.page(
                self.session,
                where,
                order_by=order_by,
                position=position,
                direction="next",
                limit=size,
                offset=max(offset, 0) if first else 0,
            )
            first = False
            if not rows:
                return
            position = rows[-1].position
            if remaining is not None:
                remaining -= len(rows)
            yield rows
            if len(rows) < size:
                return

    def iter_entities(
        self,
        *,
        filters: Sequence[str] = (),
        order_field: str | None = None,
        order: str = "asc",
        fields: Sequence[str] = (),
        offset: int = 0,
        limit: int | None = None,
        after: str | None = None,
        batch: int = 500,
        order_by: Sequence[tuple[str, str]] | None = None,
    ) -> Iterator[dict]:
        """Every matching entity in order, read in keyset batches."""
        for rows in self._iter_rows(
            filters=filters,
            order_by=_order_list(order_by) or [(order_field or "metadata.name", order)],
            offset=offset,
            limit=limit,
            after=after,
            batch=batch,
        ):
            for entity in self._hydrate((r.uid, r.entity_ref, r.body) for r in rows):
                yield project(entity, fields)

    def iter_json(
        self,
        *,
        filters: Sequence[str] = (),
        order_field: str | None = None,
        order: str = "asc",
        fields: Sequence[str] = (),
        offset: int = 0,
        after: str | None = None,
        batch: int = 1000,
        order_by: Sequence[tuple[str, str]] | None = None,
    ) -> Iterator[str]:
        """Like ``iter_entities`` but as JSON texts, for streaming whole catalogs.

        Without ``fields`` the stored text is sent as it is, with the relations spliced
        in, instead of being parsed and serialised again.
        """
        for rows in self._iter_rows(
            filters=filters,
            order_by=_order_list(order_by) or [(order_field or "metadata.name", order)],
            offset=offset,
            limit=None,
            after=after,
            batch=batch,
        ):
            if fields:
                for entity in self._hydrate((r.uid, r.entity_ref, r.body) for r in rows):
                    yield json.dumps(project(entity, fields), ensure_ascii=False)
                continue
            pairs = self._relation_pairs([r.entity_ref for r in rows])
            for row in rows:
                # Types and refs are validated names (no quotes or backslashes).
                listed = ",".join(
                    f'{{"type":"{t}","targetRef":"{target}"}}'
                    for t, target in pairs.get(row.entity_ref, ())
                )
                yield f'{row.body[:-1]},"relations":[{listed}]}}'

    def next_cursor_after(
        self,
        entity: dict,
        *,
        filters: Sequence[str],
        order_field: str | None = None,
        order: str = "asc",
        order_by: Sequence[tuple[str, str]] | None = None,
    ) -> str:
        """An ``after`` cursor continuing a list right after ``entity``."""
        uid = entity["metadata"]["uid"]
        spec = _order_list(order_by) or [[order_field or "metadata.name", order]]
        sorts = [engine.sort_expression(field) for field, _ in spec]
        values = self.session.execute(select(*sorts).where(CatalogEntity.uid == uid)).one()
        return Cursor(
            filters=list(filters),
            order_by=spec,
            position=[*("" if v is None else str(v) for v in values), uid],
        ).encode()

    def facets(
        self, keys: Sequence[str], filters: Sequence[str] = (), query: Any = None
    ) -> dict[str, Any]:
        """Per key [{value, count}]; ``query`` (a predicate object) is ANDed with ``filters``."""
        alternatives = parse_filters(filters)
        where = compile_filters(alternatives) if alternatives else None
        only_kind = (
            alternatives[0]["kind"]
            if len(alternatives) == 1 and list(alternatives[0]) == ["kind"] and query is None
            else None
        )
        if query is not None:
            predicate = compile_predicate(query)
            where = predicate if where is None else where & predicate
        return {"facets": engine.facets(self.session, keys, where, only_kind)}

    # -- locations --------------------------------------------------------------------

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
            text = read_target(kind, path, self.policy, registered=registered and is_root)
            total += len(text)
            if total > self.policy.max_tree_bytes:
                raise PayloadTooLargeError(
                    f"the locations reached from {location_key(location_type, target)} hold "
                    f"more than {self.policy.max_tree_bytes} bytes in all (at {key}); "
                    "split it into several registrations"
                )
            documents = load_documents(text, source=key, max_bytes=self.policy.max_bytes)
            self._validate_all(documents, "documents", source=key)
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
                    continue  # one location: _validate_all already refused repeats
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
        owner_group: str | None = None,
    ) -> dict:
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
            if owner_group:
                for index, entity in enumerate(entities):
                    self.check_owner(entity, owner_group, f"documents[{index}].spec.owner")
            view = (
                location_view(existing)
                if existing
                else {"id": str(uuid.uuid4()), "type": type, "target": target}
            )
            preview = [
                self._prepare(e, None, key, s) for e, s in zip(entities, sources, strict=True)
            ]
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
        stored = self.upsert_entities(
            entities, location_key=key, owner_group=owner_group, _validated=True, _sources=sources
        )
        return {"location": location_view(location), "entities": stored}

    def _location(self, location_id: str) -> CatalogLocation:
        location = self.session.get(CatalogLocation, location_id)
        if location is None:
            raise NotFoundError(f"no location with id {location_id}")
        return location

    def get_location(self, location_id: str) -> dict:
        return location_view(self._location(location_id))

    def list_locations(self) -> list[dict]:
        rows = self.session.scalars(select(CatalogLocation).order_by(CatalogLocation.created_at))
        return [location_view(r) for r in rows]

    def list_locations_with_status(self) -> list[dict]:
        """``[{data: location, status: {...}}]``: GET /locations with each location's
        refresh record (Backstage's clients read ``data`` and ignore the rest)."""
        rows = self.session.scalars(select(CatalogLocation).order_by(CatalogLocation.created_at))
        return [{"data": location_view(r), "status": location_status(r)} for r in rows]

    @collector_paused()
    def refresh_location(self, location_id: str) -> dict:
        """Re-read a location: upsert what is there, flag what disappeared as orphan.

        A location that no longer reads or validates keeps its entities as they were,
        and the error is raised for the caller to report.
        """
        location = self._location(location_id)
        entities, sources = self.read_location_tree(location.type, location.target, registered=True)
        refs = set(
            self.write_validated(
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
        orphans: list[dict] = []
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

    def delete_location(self, location_id: str, *, owner_group: str | None = None) -> None:
        """Remove a location and the entities it manages."""
        location = self._location(location_id)
        rows = self.session.execute(
            select(CatalogEntity.uid, CatalogEntity.body).where(
                CatalogEntity.location_key == location.location_key
            )
        ).all()
        if owner_group:
            for row in rows:
                self.check_owner(json.loads(row.body), owner_group, "location")
        self._delete_uids([r.uid for r in rows])
        self.session.delete(location)
        self.session.flush()

    def location_id_of(self, ref: str) -> str | None:
        """The id of the registered location an entity came from; 404 if no such entity."""
        canonical = self._ref(ref)
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

    def refresh_entity(self, ref: str) -> dict | None:
        """Refresh the location an entity came from (nothing to do if it has none)."""
        location_id = self.location_id_of(ref)
        return self.refresh_location(location_id) if location_id else None

    def find_location(self, location_type: str, target: str) -> dict | None:
        location = self.session.scalars(
            select(CatalogLocation).where(
                CatalogLocation.location_key == location_key(location_type, target)
            )
        ).first()
        return location_view(location) if location else None

    def location_of(self, ref: str) -> dict | None:
        """The location that manages an entity, if any."""
        key = self.session.scalar(
            select(CatalogEntity.location_key).where(CatalogEntity.entity_ref == self._ref(ref))
        )
        if key is None:
            return None
        location = self.session.scalars(
            select(CatalogLocation).where(CatalogLocation.location_key == key)
        ).first()
        return location_view(location) if location else None

    def location_ids(self) -> list[str]:
        return list(self.session.scalars(select(CatalogLocation.id)))
