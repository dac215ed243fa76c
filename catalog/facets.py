"""``GET /entity-facets``: per field, its values and how many entities hold each.

Counted on the search index (``catalog_search``), from the running totals of
``catalog.facet_counts`` where PostgreSQL keeps them, from ``metadata_maps`` for
annotations and labels, and from relation rows for ``relations.<type>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select, union_all
from sqlalchemy.orm import Session, aliased

from catalog.facet_counts import count_groups, is_counted
from catalog.filters import compile_filters, parse_filters, relation_directions
from catalog.map_fields import MapHasKey, MapValue
from catalog.predicates import compile_predicate
from catalog.search import is_map_key
from catalog.tables import CatalogEntity, CatalogRelation, CatalogSearch


def entity_facets(
    session: Session, keys: Sequence[str], filters: Sequence[str] = (), query: Any = None
) -> dict[str, Any]:
    """``{facets: {key: [{value, count}]}}``; ``query`` (a predicate object) is ANDed
    with ``filters`` (Backstage filter parameters, ORed)."""
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
    return {"facets": facet_counts(session, keys, where, only_kind)}


def facet_counts(
    session: Session,
    keys: Sequence[str],
    where: ColumnElement[bool] | None,
    kinds: Sequence[str] | None = None,
) -> dict[str, list[dict[str, object]]]:
    """Per requested key: [{value, count}], most frequent first.

    ``kinds`` (a filter that is only ``kind=...``) narrows the index range directly;
    any other filter restricts to the matching entities.
    """
    result: dict[str, list[dict[str, object]]] = {}
    for requested in keys:
        key = requested.lower()
        if key.startswith("relations."):
            # (entity, related ref) pairs, in each direction the rows are read.
            selects = [
                select(entity.label("ref"), other.label("other")).where(
                    CatalogRelation.type == type_
                )
                for entity, other, type_ in relation_directions(key[len("relations.") :])
            ]
            pairs = (selects[0] if len(selects) == 1 else union_all(*selects)).subquery("pairs")
            query = select(pairs.c.other, func.count(func.distinct(pairs.c.ref))).group_by(
                pairs.c.other
            )
            if where is not None:
                query = query.where(pairs.c.ref.in_(select(CatalogEntity.entity_ref).where(where)))
        elif is_map_key(key):
            # Annotations and labels: the entities holding the key (GIN on PostgreSQL),
            # grouped by lowercase value, shown in one of its original spellings.
            lowered = MapValue(key, 0)
            query = (
                select(func.min(MapValue(key, 1)), func.count())
                .select_from(CatalogEntity)
                .where(MapHasKey(key))
            )
            if kinds:
                query = query.where(CatalogEntity.kind.in_(kinds))
            elif where is not None:
                query = query.where(where)
            query = query.group_by(lowered)
        else:
            # Count on the index alone (key, value[, kind]); the display spelling of each
            # value is then looked up once per group, not read from every row.
            groups = select(CatalogSearch.value, func.count().label("n")).where(
                CatalogSearch.key == key
            )
            if kinds:
                groups = groups.where(CatalogSearch.kind.in_(kinds))
            elif where is not None:
                groups = groups.where(
                    CatalogSearch.entity_uid.in_(select(CatalogEntity.uid).where(where))
                )
            grouped = groups.group_by(CatalogSearch.value).subquery()
            if is_counted(key) and (kinds or where is None):
                grouped = count_groups(key, kinds).subquery()  # running totals instead
            spelling = aliased(CatalogSearch)
            original = (
                select(spelling.original_value)
                .where(spelling.key == key, spelling.value == grouped.c.value)
                .limit(1)
                .scalar_subquery()
            )
            query = select(original, grouped.c.n)
        values = [{"value": v, "count": int(c)} for v, c in session.connection().execute(query)]
        values.sort(key=lambda item: (-int(item["count"]), str(item["value"])))
        result[requested] = values
    return result
