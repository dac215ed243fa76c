"""The query engine: keyset pages, counts and facets over the search index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Subquery, and_, func, or_, select, tuple_, union_all
from sqlalchemy.orm import Session, aliased

from catalog.errors import ErrorDetail, InputError
from catalog.facet_counts import count_groups, count_value, has_counts
from catalog.filters import relation_directions
from catalog.map_fields import MapHasKey, MapValue
from catalog.search import is_map_key
from catalog.tables import FULL_TEXT_KEYS, CatalogEntity, CatalogRelation, CatalogSearch

MAX_LIMIT = 1000
# Each non-column order field is a correlated subquery per row; a handful is plenty.
MAX_ORDER_FIELDS = 5
DEFAULT_ORDER: tuple[tuple[str, str], ...] = (("metadata.name", "asc"),)
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
    # One value per order field, then the uid: the keyset position of this row.
    sort_values: tuple[str, ...]

    @property
    def position(self) -> list[str]:
        return [*self.sort_values, self.uid]


def _own_row_sort(key: str) -> ColumnElement[str] | None:
    """The sort expression of a field the entity's own row holds (a column, or an
    annotation or label in metadata_maps); None for fields read from search rows."""
    column = _SORT_COLUMNS.get(key)
    if column is not None:
        return column
    if is_map_key(key):  # entities without it sort as the empty string
        return func.coalesce(MapValue(key), "")
    return None


def sort_expression(order_field: str | None) -> ColumnElement[str]:
    if order_field is None:
        return CatalogEntity.name
    key = order_field.lower()
    own = _own_row_sort(key)
    if own is not None:
        return own
    # Entities without the field sort as the empty string.
    smallest = (
        select(func.min(CatalogSearch.value))
        .where(CatalogSearch.entity_uid == CatalogEntity.uid, CatalogSearch.key == key)
        .scalar_subquery()
    )
    return func.coalesce(smallest, "")


def _sort_key(field: str, joins: list[Subquery]) -> ColumnElement[str]:
    """The expression a page sorts ``field`` by; search-row fields add a join to ``joins``.

    A page needs the sort value of every matching entity. As one grouped read of the
    key's index range joined to the entities, that is linear; the correlated subquery of
    ``sort_expression`` per row made SQLite walk the whole key range for every entity
    (quadratic: ~0.5 s a page at 2,000 entities).
    """
    key = field.lower()
    own = _own_row_sort(key)
    if own is not None:
        return own  # no join
    values = (
        select(
            CatalogSearch.entity_uid.label("uid"),
            func.min(CatalogSearch.value).label("value"),
        )
        .where(CatalogSearch.key == key)
        .group_by(CatalogSearch.entity_uid)
        .subquery(f"sort_{len(joins)}")
    )
    joins.append(values)
    # Entities without the field sort as the empty string.
    return func.coalesce(values.c.value, "")


def _keyset_condition(
    keys: Sequence[tuple[ColumnElement[str], bool]], values: Sequence[str]
) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order ``keys`` (expression, ascending)."""
    if len({ascending for _, ascending in keys}) == 1:
        # One direction: a row-value comparison, which an index on the columns can serve.
        left, right = tuple_(*(k for k, _ in keys)), tuple_(*values)
        return left > right if keys[0][1] else left < right
    # Mixed directions: (a > x) OR (a = x AND b < y) OR (a = x AND b = y AND uid > u).
    alternatives = []
    for index, (expression, ascending) in enumerate(keys):
        equal = [k == v for (k, _), v in zip(keys[:index], values[:index], strict=True)]
        beyond = expression > values[index] if ascending else expression < values[index]
        alternatives.append(and_(*equal, beyond))
    return or_(*alternatives)


def page(
    session: Session,
    where: ColumnElement[bool],
    *,
    order_by: Sequence[tuple[str, str]],
    position: Sequence[str] | None,
    direction: str,
    limit: int,
    offset: int = 0,
) -> list[Row]:
    """Up to ``limit`` rows after (next) or before (prev) ``position``, in display order.

    ``order_by`` is [(field, "asc"|"desc"), ...]; ties are broken by uid in the last
    field's direction, so the order is total and keyset positions are unambiguous.
    """
    order_by = list(order_by) or list(DEFAULT_ORDER)
    flip = direction != "next"
    joins: list[Subquery] = []
    keys: list[tuple[ColumnElement[str], bool]] = [
        (_sort_key(field, joins), (order == "asc") != flip) for field, order in order_by
    ]
    keys.append((CatalogEntity.uid, keys[-1][1]))
    labels = [key.label(f"sort_value_{i}") for i, (key, _) in enumerate(keys[:-1])]
    source: Any = CatalogEntity.__table__  # type: ignore[attr-defined]
    for values in joins:
        source = source.outerjoin(values, values.c.uid == CatalogEntity.uid)
    query = (
        select(CatalogEntity.uid, CatalogEntity.entity_ref, CatalogEntity.body, *labels)
        .select_from(source)
        .where(where)
    )
    if position is not None:
        query = query.where(_keyset_condition(keys, position))
    query = query.order_by(*(k.asc() if ascending else k.desc() for k, ascending in keys))
    if offset:
        query = query.offset(offset)
    rows = [
        Row(r[0], r[1], r[2], tuple("" if v is None else str(v) for v in r[3:]))
        for r in session.connection().execute(query.limit(limit))
    ]
    if direction == "prev":
        rows.reverse()
    return rows


def check_order_by(order_by: Sequence[tuple[str, str]], *, param: str) -> list[tuple[str, str]]:
    """Validated (field, direction) pairs; a 400 naming ``param`` otherwise."""
    if len(order_by) > MAX_ORDER_FIELDS:
        raise InputError(
            f"at most {MAX_ORDER_FIELDS} {param} values are allowed, got {len(order_by)}",
            [ErrorDetail(param, f"at most {MAX_ORDER_FIELDS} order fields")],
        )
    checked = []
    for field, order in order_by:
        if not isinstance(field, str) or not field.strip() or order not in ("asc", "desc"):
            raise InputError(
                f"invalid {param} ({field!r}, {order!r}): a field path and 'asc' or 'desc'",
                [ErrorDetail(param, "expected a field and asc|desc")],
            )
        checked.append((field.strip(), order))
    return checked


def count(
    session: Session,
    where: ColumnElement[bool],
    fast: tuple[str, list[str], list[str]] | None = None,
) -> int:
    if fast is not None:
        # One (key, value[, kind]) index range; distinct because an entity can hold
        # several of the requested values (e.g. two of the tags asked for).
        key, values, kinds = fast
        if len(values) == 1 and has_counts(session, key):
            return count_value(session, key, values[0], kinds)  # a few running totals
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
            if has_counts(session, key) and (kinds or where is None):
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
        values.sort(key=lambda item: (-int(item["count"]), str(item["value"])))  # type: ignore[call-overload]
        result[requested] = values
    return result


def check_limit(limit: int | None, *, default: int | None, param: str = "limit") -> int | None:
    if limit is None:
        return default
    if limit < 0:
        raise InputError(f"{param} must be >= 0", [ErrorDetail(param, "must be >= 0")])
    return min(limit, MAX_LIMIT)
