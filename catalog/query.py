"""The query engine: keyset pages, counts and facets over the search index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from catalog.errors import ErrorDetail, InputError
from catalog.relations import CANONICAL_TYPE
from catalog.tables import FULL_TEXT_KEYS, CatalogEntity, CatalogRelation, CatalogSearch

MAX_LIMIT = 1000
DEFAULT_FULL_TEXT_FIELDS = FULL_TEXT_KEYS

_SORT_COLUMNS = {
    "metadata.name": CatalogEntity.name,
    "kind": CatalogEntity.kind,
    "metadata.namespace": CatalogEntity.namespace,
    "metadata.uid": CatalogEntity.uid,
}


@dataclass(frozen=True)
class Row:
    uid: str
    entity_ref: str
    body: str
    sort_value: str


def sort_expression(order_field: str | None) -> ColumnElement[str]:
    if order_field is None:
        return CatalogEntity.name
    key = order_field.lower()
    column = _SORT_COLUMNS.get(key)
    if column is not None:
        return column
    # Entities without the field sort as the empty string.
    smallest = (
        select(func.min(CatalogSearch.value))
        .where(CatalogSearch.entity_uid == CatalogEntity.uid, CatalogSearch.key == key)
        .scalar_subquery()
    )
    return func.coalesce(smallest, "")


def page(
    session: Session,
    where: ColumnElement[bool],
    *,
    order_field: str | None,
    order: str,
    position: Sequence[str] | None,
    direction: str,
    limit: int,
    offset: int = 0,
) -> list[Row]:
    """Up to ``limit`` rows after (next) or before (prev) ``position``, in display order."""
    sort = sort_expression(order_field).label("sort_value")
    forward = (order == "asc") == (direction == "next")
    query = select(CatalogEntity.uid, CatalogEntity.entity_ref, CatalogEntity.body, sort).where(
        where
    )
    if position is not None:
        key = tuple_(sort_expression(order_field), CatalogEntity.uid)
        bound = tuple_(*position)
        query = query.where(key > bound if forward else key < bound)
    if forward:
        query = query.order_by(sort_expression(order_field).asc(), CatalogEntity.uid.asc())
    else:
        query = query.order_by(sort_expression(order_field).desc(), CatalogEntity.uid.desc())
    if offset:
        query = query.offset(offset)
    rows = [Row(*r) for r in session.connection().execute(query.limit(limit))]
    if direction == "prev":
        rows.reverse()
    return rows


def count(
    session: Session,
    where: ColumnElement[bool],
    fast: tuple[str, list[str], list[str]] | None = None,
) -> int:
    if fast is not None:
        # One (key, value[, kind]) index range; distinct because an entity can hold
        # several of the requested values (e.g. two of the tags asked for).
        key, values, kinds = fast
        # (key, value, kind, uid) is unique: one value counts rows, several need distinct.
        counted = (
            func.count()
            if len(values) == 1
            else func.count(func.distinct(CatalogSearch.entity_uid))
        )
        query = select(counted).where(CatalogSearch.key == key, CatalogSearch.value.in_(values))
        if kinds:
            query = query.where(CatalogSearch.kind.in_(kinds))
        return int(session.scalar(query) or 0)
    return int(session.scalar(select(func.count()).select_from(CatalogEntity).where(where)) or 0)


def facets(
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
            relation = key[len("relations.") :]
            query = (
                select(
                    CatalogRelation.target_ref,
                    func.count(func.distinct(CatalogRelation.source_ref)),
                )
                .where(CatalogRelation.type == CANONICAL_TYPE.get(relation, relation))
                .group_by(CatalogRelation.target_ref)
            )
            if where is not None:
                query = query.where(
                    CatalogRelation.source_ref.in_(select(CatalogEntity.entity_ref).where(where))
                )
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
            spelling = aliased(CatalogSearch)
            original = (
                select(spelling.original_value)
                .where(spelling.key == key, spelling.value == grouped.c.value)
                .limit(1)
                .scalar_subquery()
            )
            query = select(original, grouped.c.n)
        values = [{"value": v, "count": int(c)} for v, c in session.connection().execute(query)]
        values.sort(key=lambda item: (-int(item["count"]), str(item["value"])))  # type: ignore[call-overload]
        result[requested] = values
    return result


def check_limit(limit: int | None, *, default: int | None, param: str = "limit") -> int | None:
    if limit is None:
        return default
    if limit < 0:
        raise InputError(f"{param} must be >= 0", [ErrorDetail(param, "must be >= 0")])
    return min(limit, MAX_LIMIT)
