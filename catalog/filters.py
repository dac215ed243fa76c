"""Backstage filter syntax, parsed and compiled to SQL over the search index.

``filter=kind=component,spec.type=service`` (comma = AND) and repeated ``filter``
parameters (OR). ``key`` alone means the key exists; the same key twice in one
filter means any of the values. Keys and values match case-insensitively.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    and_,
    bindparam,
    exists,
    false,
    literal,
    or_,
    select,
    text,
    true,
    union_all,
)

from catalog.errors import ErrorDetail, InputError
from catalog.map_fields import MapValue, map_condition
from catalog.relations import CANONICAL_TYPE, REVERSE
from catalog.search import is_map_key
from catalog.tables import (
    COUNTED_KEYS,
    FULL_TEXT_KEYS,
    CatalogEntity,
    CatalogRelation,
    CatalogSearch,
)

# One AND-group: key -> accepted values (None: the key only has to exist).
Conditions = dict[str, list[str] | None]

# Keys answered from entity columns instead of the search rows.
_COLUMNS = {
    "kind": CatalogEntity.kind,
    "metadata.namespace": CatalogEntity.namespace,
    "metadata.name": CatalogEntity.name,
    "metadata.uid": CatalogEntity.uid,
}


def parse_filter_param(text: str, *, param: str = "filter") -> Conditions:
    conditions: Conditions = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not key:
            raise InputError(
                f"invalid {param} {text!r}: each condition is 'key=value' or 'key'",
                [ErrorDetail(param, f"condition {part!r} has no key")],
            )
        if not sep:
            conditions[key] = None
            continue
        existing = conditions.get(key, [])
        if existing is None:  # key already required to exist; a value narrows it
            existing = []
        existing.append(value.strip().lower())
        conditions[key] = existing
    return conditions


def parse_filters(params: Sequence[str]) -> list[Conditions]:
    return [c for c in (parse_filter_param(p) for p in params) if c]


def conditions_from_mapping(filter: Mapping[str, str | Sequence[str] | None]) -> Conditions:
    conditions: Conditions = {}
    for key, value in filter.items():
        if value is None:
            conditions[key.lower()] = None
        elif isinstance(value, str):
            conditions[key.lower()] = [value.lower()]
        else:
            conditions[key.lower()] = [str(v).lower() for v in value]
    return conditions


def _condition(
    key: str, values: list[str] | None, kinds: list[str] | None = None, *, probe: bool = False
) -> ColumnElement[bool]:
    """One condition. A search-row condition with values is, with ``probe``, a check of
    each entity's own rows (see ``compile_filters``); otherwise the set of entities whose
    rows match, which ``kinds`` (the group's kind values) narrows to one index range."""
    if key.startswith("relations."):
        return CatalogEntity.entity_ref.in_(related(key[len("relations.") :], values))
    column = _COLUMNS.get(key)
    if column is not None:
        return column.in_(values) if values else true()
    if is_map_key(key):  # annotations and labels: the entity's metadata_maps column
        return map_condition(key, values)
    if probe and values:
        # Every primary-key column is bound per entity (a search row's kind is its
        # entity's), so each check is one index probe. OFFSET 0 keeps PostgreSQL from
        # turning it into a join that reads every matching row first.
        own_rows = (
            select(literal(1))
            .where(
                CatalogSearch.key == key,
                CatalogSearch.value.in_(values),
                CatalogSearch.kind == CatalogEntity.kind,
                CatalogSearch.entity_uid == CatalogEntity.uid,
            )
            .offset(0)
        )
        return exists(own_rows)
    sub = select(CatalogSearch.entity_uid).where(CatalogSearch.key == key)
    if values:
        sub = sub.where(CatalogSearch.value.in_(values))
    if kinds:  # narrows the index range when the group also filters on kind
        sub = sub.where(CatalogSearch.kind.in_(kinds))
    return CatalogEntity.uid.in_(sub)


def relation_directions(relation: str) -> list[tuple[Any, Any, str]]:
    """How to read a ``relation`` (lowercase type) from the stored rows, as (entity
    column, related-ref column, stored type): forward rows of that type, then rows of
    its reverse type read backwards (only forward rows are stored)."""
    type_ = CANONICAL_TYPE.get(relation, relation)
    directions = [(CatalogRelation.source_ref, CatalogRelation.target_ref, type_)]
    if type_ in REVERSE:
        directions.append((CatalogRelation.target_ref, CatalogRelation.source_ref, REVERSE[type_]))
    return directions


def related(
    relation: str, targets: list[str] | None
) -> CompoundSelect[tuple[str]] | Select[tuple[str]]:
    """Refs of the entities with a ``relation`` (lowercase type) to any of ``targets``
    (to anything when None)."""
    selects = []
    for entity, other, type_ in relation_directions(relation):
        sub = select(entity).where(CatalogRelation.type == type_)
        selects.append(sub.where(other.in_(targets)) if targets else sub)
    return selects[0] if len(selects) == 1 else union_all(*selects)


def condition(key: str, values: list[str] | None) -> ColumnElement[bool]:
    """One ``key[=value...]`` condition (lowercase key and values); also used by predicates."""
    return _condition(key, values)


@dataclass(frozen=True)
class SimpleFilter:
    """A filter that is one group of at most a kind condition and one other condition
    with values (``kind=component,spec.type=service``; ``spec.lifecycle=production``;
    ``kind=component``; none at all): what by-query counts from one index range or the
    running facet counts instead of from the entities."""

    kinds: list[str]  # empty: any kind
    key: str | None  # None: kind only (or no filter)
    values: list[str]


def simple_filter(alternatives: list[Conditions]) -> SimpleFilter | None:
    if not alternatives:
        return SimpleFilter([], None, [])
    if len(alternatives) != 1:
        return None
    group = alternatives[0]
    kinds = group.get("kind") or []
    rest = [(k, v) for k, v in group.items() if k != "kind"]
    if not rest:
        return SimpleFilter(kinds, None, [])
    if len(rest) != 1:
        return None
    key, values = rest[0]
    if not values:
        return None
    if _is_search_key(key, values) or (key in _COLUMNS and key in COUNTED_KEYS):
        return SimpleFilter(kinds, key, values)
    return None


def compile_filters(alternatives: list[Conditions], *, dense: bool = False) -> ColumnElement[bool]:
    """OR of AND-groups; no groups at all matches everything.

    Two forms of the same filter, for the two ways to find a page of it in name order:

    - sparse (default): a search-row condition is the set of entities whose rows match
      (an index range); the page sorts the matches. Cost: the number of matches.
    - ``dense``: a search-row condition is checked on each entity as the page walks the
      entities in order (a primary-key probe each). Cost: the page size divided by the
      share of entities that match -- the right form when most of them do.

    In the sparse form a ``kind`` condition next to a search-row condition with values is
    left to that condition's index range (search rows carry their entity's kind): as a
    column condition too, SQLite would walk every entity of the kind.
    """
    if not alternatives:
        return true()
    groups = []
    for group in alternatives:
        kinds = group.get("kind")
        implied = not dense and bool(kinds) and any(_is_search_key(k, v) for k, v in group.items())
        conditions = [
            _condition(k, v, kinds, probe=dense)
            for k, v in group.items()
            if not (k == "kind" and implied)
        ]
        groups.append(and_(true(), *conditions))
    return or_(*groups) if groups else false()


def is_column_key(key: str) -> bool:
    """A key answered from a catalog_entities column (kind, namespace, name, uid)."""
    return key in _COLUMNS


def _is_search_key(key: str, values: list[str] | None) -> bool:
    """A condition with values answered from the search rows."""
    return bool(values) and not (key in _COLUMNS or key.startswith("relations.") or is_map_key(key))


def full_text_matches(
    term: str, fields: Sequence[str], *, text_index: bool = False
) -> Select[tuple[str]]:
    """Uids of entities where any of ``fields`` contains ``term`` (case-insensitive).

    ``text_index``: the database has SQLite's trigram index of the default full-text
    rows (migration 0016); PostgreSQL's pg_trgm index serves the LIKE below instead.
    """
    escaped = term.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    # The keys are rendered into the SQL (quoted by SQLAlchemy) rather than bound: only
    # then can PostgreSQL prove "key IN (...)" implies the trigram index's partial
    # predicate, also in the generic plans of statements psycopg prepares.
    pattern = f"%{escaped}%"
    lowered = [f.lower() for f in fields]
    row_keys = [key for key in lowered if not is_map_key(key)]
    map_keys = [key for key in lowered if is_map_key(key)]
    parts: list[Select[tuple[str]]] = []
    if text_index and _text_indexed(term, row_keys) and not map_keys:
        return _text_index_matches(term, row_keys)
    if row_keys or not map_keys:
        keys: BindParameter[list[str]] = bindparam("full_text_keys", row_keys, literal_execute=True)
        parts.append(
            select(CatalogSearch.entity_uid.label("uid")).where(
                CatalogSearch.key.in_(keys),
                CatalogSearch.value.like(pattern, escape="\\"),
            )
        )
    if map_keys:  # annotations and labels named as fields: a scan of the entities
        parts.append(
            select(CatalogEntity.uid.label("uid")).where(
                or_(*(MapValue(key).like(pattern, escape="\\") for key in map_keys))
            )
        )
    if len(parts) == 1:
        return parts[0]
    both = union_all(*parts).subquery("full_text")
    return select(both.c.uid)


def full_text_condition(
    term: str, fields: Sequence[str], *, text_index: bool = False
) -> ColumnElement[bool]:
    return CatalogEntity.uid.in_(full_text_matches(term, fields, text_index=text_index))


def _text_indexed(term: str, keys: Sequence[str]) -> bool:
    """Whether SQLite's trigram index answers ``term`` over ``keys``: it holds the
    default full-text rows, and a phrase shorter than a trigram matches nothing."""
    return bool(keys) and set(keys) <= set(FULL_TEXT_KEYS) and len(term) >= 3


def _text_index_matches(term: str, keys: Sequence[str]) -> Select[tuple[str]]:
    """``_text_indexed`` matches through ``catalog_search_text`` (SQLite, FTS5 trigram).

    A quoted FTS5 phrase matches the rows holding the term as a substring (consecutive
    trigrams, case folded), as ``LIKE '%term%'`` does. CROSS JOIN keeps SQLite reading
    the index first (it would otherwise scan every row of the keys). ``instr`` checks
    each found row again: the index is keyed by the search row's rowid, which a VACUUM
    may renumber (see docs/catalog.md); a stale index can then miss rows, never add
    wrong ones.
    """
    lowered = term.lower()
    listed = ", ".join(f"'{key}'" for key in keys)  # keys of FULL_TEXT_KEYS: plain names
    rows = (
        text(
            "SELECT s.entity_uid AS uid FROM catalog_search_text AS f "
            "CROSS JOIN catalog_search AS s ON s.rowid = f.rowid "
            "WHERE f.catalog_search_text MATCH :text_phrase "
            f"AND s.key IN ({listed}) AND instr(s.value, :text_term) > 0"
        )
        .bindparams(text_phrase='"' + lowered.replace('"', '""') + '"', text_term=lowered)
        .columns(uid=String)
        .subquery("text_matches")
    )
    return select(rows.c.uid)
