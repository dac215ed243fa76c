"""Entity reads: by-query pages, listings, by-name/uid/refs and facets, with their SQL.

Backstage's ``DefaultEntitiesCatalog``: ``GET /entities/by-query`` goes from the router
straight to ``EntityReads.query_entities`` here, which compiles the filter
(``catalog.filters``), counts and reads one keyset page with the SQL below.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Label,
    SQLColumnExpression,
    Subquery,
    and_,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from catalog import combo_counts
from catalog.bulk import any_of, chunks, fetch_tuples
from catalog.cursor import Cursor
from catalog.documents import project
from catalog.errors import ErrorDetail, InputError
from catalog.facet_counts import count_value, count_values, is_counted
from catalog.facets import entity_facets
from catalog.filters import (
    Conditions,
    SimpleFilter,
    compile_filters,
    conditions_from_mapping,
    full_text_condition,
    full_text_matches,
    is_column_key,
    parse_filters,
    simple_filter,
)
from catalog.hydration import read_one, relation_texts, with_relations
from catalog.map_fields import MapValue
from catalog.predicates import compile_predicate
from catalog.refs import RefError, canonical_ref, normalize_ref
from catalog.search import is_map_key
from catalog.tables import FULL_TEXT_KEYS, CatalogEntity, CatalogSearch

MAX_LIMIT = 1000
DEFAULT_LIMIT = 20
# Each non-column order field is a correlated subquery per row; a handful is plenty.
MAX_ORDER_FIELDS = 5
DEFAULT_ORDER: tuple[tuple[str, str], ...] = (("metadata.name", "asc"),)
# A full-text term matching at most this many entities becomes a uid list (_full_text):
# one scan of the trigram index instead of one each for the count and the page. At 1M
# entities a term matching 11,111 answered in 121-169 ms as a list, 269-478 ms as a
# subquery; 20,000 uids are about 2 MB in memory.
_FULL_TEXT_LIST = 20_000

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


class PageRows(list[Row]):
    """A page's rows; ``total``: how many matched, when the page counted them."""

    total: int | None = None


@dataclass(frozen=True)
class FoundPage:
    rows: list[Row]
    total: int | None  # None when the caller asked for no total
    page_info: dict[str, str]


def _order_list(order_by: Sequence[tuple[str, str]] | None) -> list[list[str]] | None:
    """Order pairs as the cursor stores them (JSON lists); None when not given."""
    return [[field, order] for field, order in order_by] if order_by else None


class EntityReads:
    """Reads on the caller's session (it never writes or commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- one entity, or a list of refs ---------------------------------------------------

    def get_by_ref(self, ref: str) -> dict[str, Any] | None:
        return read_one(self.session, CatalogEntity.entity_ref == canonical_ref(ref))

    def get_by_name(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.get_by_ref(f"{kind}:{namespace}/{name}")

    def get_by_uid(self, uid: str) -> dict[str, Any] | None:
        return read_one(self.session, CatalogEntity.uid == uid)

    def get_by_refs(
        self,
        refs: Sequence[str],
        *,
        filters: Sequence[str] = (),
        fields: Sequence[str] = (),
        query: Any = None,
    ) -> list[dict[str, Any] | None]:
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
        for chunk in chunks(sorted(set(wanted))):
            for row in self.session.connection().execute(
                select(CatalogEntity.uid, CatalogEntity.entity_ref, CatalogEntity.body).where(
                    any_of(self.session, CatalogEntity.entity_ref, chunk), where
                )
            ):
                rows[row.entity_ref] = tuple(row)
        entities = with_relations(self.session, rows.values())
        hydrated = dict(zip(rows, entities, strict=True))
        return [project(hydrated[c], fields) if c in hydrated else None for c in canonical]

    def query_refs(self, filter: Mapping[str, str | Sequence[str] | None]) -> list[str]:
        """Refs of the entities matching every condition (same semantics as the API)."""
        where = compile_filters([conditions_from_mapping(filter)] if filter else [])
        return sorted(self.session.scalars(select(CatalogEntity.entity_ref).where(where)))

    def facets(
        self, keys: Sequence[str], filters: Sequence[str] = (), query: Any = None
    ) -> dict[str, Any]:
        """Per key [{value, count}]; ``query`` (a predicate object) is ANDed with ``filters``."""
        return entity_facets(self.session, keys, filters, query)

    # -- by-query ----------------------------------------------------------------------

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
        found = self._query_page(
            filters=filters,
            order_field=order_field,
            order=order,
            term=term,
            term_fields=term_fields,
            cursor=cursor,
            limit=limit,
            offset=offset,
            include_total=include_total,
            query=query,
            order_by=order_by,
        )
        stored = ((r.uid, r.entity_ref, r.body) for r in found.rows)
        entities = with_relations(self.session, stored)
        result: dict[str, Any] = {
            "items": [project(e, fields) for e in entities],
            "pageInfo": found.page_info,
        }
        if found.total is not None:
            result["totalItems"] = found.total
        return result

    def query_entities_json(self, *, fields: Sequence[str] = (), **query: Any) -> str:
        """``query_entities``' answer as JSON text (what the HTTP API sends): the stored
        documents are spliced in as they are, not parsed and serialised again."""
        found = self._query_page(**query)
        parts = ['{"items":[', ",".join(self._entity_texts(found.rows, fields)), "],"]
        parts.append('"pageInfo":' + json.dumps(found.page_info, separators=(",", ":")))
        if found.total is not None:
            parts.append(f',"totalItems":{found.total}')
        parts.append("}")
        return "".join(parts)

    def _query_page(
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
        include_total: bool = True,
        query: Any = None,
        order_by: Sequence[tuple[str, str]] | None = None,
    ) -> FoundPage:
        size = check_limit(limit, default=DEFAULT_LIMIT) or 0
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
        alternatives = parse_filters(state.filters)
        simple = None if state.term or state.query is not None else simple_filter(alternatives)
        order_by = state.sort_spec()
        # What narrows the filters' matches: the full-text term and the predicate (a page
        # with either never walks the name order, below).
        narrowing: list[ColumnElement[bool]] = []
        term_matches = None
        text_condition = None
        if state.term and state.term.strip():
            text_condition, term_matches = self._full_text(state.term, state.term_fields)
            narrowing.append(text_condition)
        if state.query is not None:
            narrowing.append(compile_predicate(state.query))
        # With a term's short list of matches, the filters are checked on those entities
        # (a probe each) rather than collecting everything they match: a filter matching
        # 42 % of 1M entities is ~420k search rows to intersect with a term's ~1,000.
        where = and_(compile_filters(alternatives, dense=term_matches is not None), *narrowing)
        total = state.total
        matches, population = total, None
        if (
            matches is None
            and term_matches is not None
            and not alternatives
            and state.query is None
        ):
            matches = term_matches  # the full-text matches are the answer's entities
        # The running counts know the filter alone (no term, no predicate).
        counted_filter = [] if state.term or state.query is not None else alternatives
        cheap = simple is not None or combo_counts.answers(counted_filter)
        # A term makes the first page sort every match: that same pass counts them (one
        # statement instead of a count and a page, each finding them through the term).
        # Not a predicate alone: it can match most of the catalog, which a count reads
        # from an index while the page stops after its rows.
        count_in_page = (
            matches is None and include_total and text_condition is not None and not cursor
        )
        if matches is None and (include_total or cheap) and not count_in_page:
            # Exact, and cheap for the common shapes (simple filters, filters of counted
            # keys): the plan below needs it even when the caller does not.
            matches, population = count(self.session, where, simple, counted_filter)
        if total is None and include_total:
            total = matches
        # The walk checks every condition on each entity it passes, so only the filters' own
        # probes: a broad term's subquery per walked row took over 2 minutes at 1M, and a
        # term's uid list is an array PostgreSQL re-reads per row in a prepared statement's
        # generic plan. With a term or a predicate the page sorts the matches.
        if not narrowing and self._dense(
            alternatives, simple, matches, population, size + 1, order_by
        ):
            where = compile_filters(alternatives, dense=True)
        found = page(
            self.session,
            where,
            order_by=order_by,
            position=state.position,
            direction=state.direction,
            limit=size + 1,
            offset=0 if cursor else offset,
            counted=count_in_page,
        )
        if count_in_page:
            if found.total is not None:
                total = found.total
            elif offset:  # an offset past the last match: no row brought the count
                total = count(self.session, where, simple, counted_filter)[0]
            else:
                total = 0
        more = len(found) > size
        rows: list[Row] = found
        if more:
            rows = found[1:] if state.direction == "prev" else found[:size]
        page_info: dict[str, str] = {}

        def at(row: Row, direction: str) -> str:
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
        return FoundPage(rows, total, page_info)

    def _entity_texts(self, rows: Sequence[Row], fields: Sequence[str]) -> list[str]:
        """The JSON texts of rows' entities with their relations (only ``fields``)."""
        if fields:
            stored = ((r.uid, r.entity_ref, r.body) for r in rows)
            return [
                json.dumps(project(entity, fields), ensure_ascii=False, separators=(",", ":"))
                for entity in with_relations(self.session, stored)
            ]
        relations = relation_texts(self.session, [r.entity_ref for r in rows])
        return [
            f'{row.body[:-1]},"relations":[{relations.get(row.entity_ref, "")}]}}' for row in rows
        ]

    def _dense(
        self,
        alternatives: list[Conditions],
        simple: SimpleFilter | None,
        total: int | None,
        population: int | None,
        size: int,
        order_by: Sequence[tuple[str, str]],
    ) -> bool:
        """Whether to find the page by walking the entities in name order, checking each
        (``compile_filters(dense=True)``), rather than by sorting the matches.

        Walking costs about ``size * population / total`` index probes, sorting about
        ``total`` rows; the walk wins when ``total`` is above ``sqrt(size * population)``
        (1M entities, 21 rows: 0.5 % of the catalog), so neither ever costs more than
        that many steps. Only for one AND-group in the default order (an index order);
        ``population`` is what the group's kinds hold, from the running counts (read
        here unless the count brought it).
        """
        if total is None or len(alternatives) != 1 or len(order_by) != 1:
            return False
        if order_by[0][0].lower() != "metadata.name":
            return False
        if simple is not None and simple.key is None:
            return False  # no search-row condition: both forms are the same SQL
        if population is None:
            kinds = alternatives[0].get("kind") or None
            population = count_value(self.session, "kind", kinds, None)
        return total * total >= size * population

    def _full_text(self, term: str, fields: Sequence[str]) -> tuple[Any, int | None]:
        """The condition of a full-text term, and how many entities match it when that
        is known (a short list of matches).

        The matches are found first (one scan of those keys' rows through the trigram
        index). Up to _FULL_TEXT_LIST become a uid list, so counting them is free and
        sorting them cheap; as a subquery, the count and the page would each scan again.
        """
        fields = fields or FULL_TEXT_KEYS
        # SQLite's trigram index (migration 0016); PostgreSQL's is an index on the rows.
        text_index = self.session.get_bind().dialect.name == "sqlite"
        matching = full_text_matches(term.strip(), fields, text_index=text_index)
        matches = list(
            self.session.connection()
            .execute(matching.distinct().limit(_FULL_TEXT_LIST + 1))
            .scalars()
        )
        if len(matches) <= _FULL_TEXT_LIST:
            return any_of(self.session, CatalogEntity.uid, matches), len(matches)
        # A term matching more: a list would cost more memory than the scans.
        return full_text_condition(term.strip(), fields, text_index=text_index), None

    # -- whole listings (GET /entities) --------------------------------------------------

    def _iter_rows(
        self,
        *,
        filters: Sequence[str],
        order_by: Sequence[tuple[str, str]],
        offset: int,
        limit: int | None,
        after: str | None,
        batch: int,
        first_batch: int | None = None,
    ) -> Iterator[list[Row]]:
        """Matching rows in order, in keyset batches (never one huge result set); the
        first one of ``first_batch`` rows when given (a stream's first bytes leave sooner)."""
        position = None
        if after:
            state = Cursor.decode(after, param="after")
            filters, order_by = state.filters, state.sort_spec()
            position = state.position
        alternatives = parse_filters(filters)
        simple = simple_filter(alternatives)
        where = compile_filters(alternatives)
        total = (
            count(self.session, where, simple, alternatives)[0]
            if simple is not None or combo_counts.answers(alternatives)
            else None
        )
        if self._dense(alternatives, simple, total, None, batch, order_by):
            where = compile_filters(alternatives, dense=True)
        remaining = limit
        first = True
        while remaining is None or remaining > 0:
            size = first_batch if first and first_batch else batch
            size = size if remaining is None else min(size, remaining)
            rows = page(
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
    ) -> Iterator[dict[str, Any]]:
        """Every matching entity in order, read in keyset batches."""
        for rows in self._iter_rows(
            filters=filters,
            order_by=order_by or [(order_field or "metadata.name", order)],
            offset=offset,
            limit=limit,
            after=after,
            batch=batch,
        ):
            for entity in with_relations(
                self.session, ((r.uid, r.entity_ref, r.body) for r in rows)
            ):
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
        """Like ``iter_entities`` but as JSON texts, for streaming whole catalogs."""
        for texts in self.json_batches(
            filters=filters,
            order_field=order_field,
            order=order,
            fields=fields,
            offset=offset,
            after=after,
            batch=batch,
            order_by=order_by,
        ):
            yield from texts

    def json_batches(
        self,
        *,
        filters: Sequence[str] = (),
        order_field: str | None = None,
        order: str = "asc",
        fields: Sequence[str] = (),
        offset: int = 0,
        after: str | None = None,
        batch: int = 1000,
        first_batch: int | None = None,
        order_by: Sequence[tuple[str, str]] | None = None,
    ) -> Iterator[list[str]]:
        """Every matching entity in order as JSON texts, one list per keyset batch.

        Without ``fields`` the stored text is sent as it is, with the relations spliced
        in, instead of being parsed and serialised again.
        """
        for rows in self._iter_rows(
            filters=filters,
            order_by=order_by or [(order_field or "metadata.name", order)],
            offset=offset,
            limit=None,
            after=after,
            batch=batch,
            first_batch=first_batch,
        ):
            yield self._entity_texts(rows, fields)

    def next_cursor_after(
        self,
        entity: dict[str, Any],
        *,
        filters: Sequence[str],
        order_field: str | None = None,
        order: str = "asc",
        order_by: Sequence[tuple[str, str]] | None = None,
    ) -> str:
        """An ``after`` cursor continuing a list right after ``entity``."""
        uid = entity["metadata"]["uid"]
        spec = _order_list(order_by) or [[order_field or "metadata.name", order]]
        sorts = [sort_expression(field) for field, _ in spec]
        values = self.session.execute(select(*sorts).where(CatalogEntity.uid == uid)).one()
        return Cursor(
            filters=list(filters),
            order_by=spec,
            position=[*("" if v is None else str(v) for v in values), uid],
        ).encode()


# -- the SQL: keyset pages and counts ---------------------------------------------------


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


def check_limit(limit: int | None, *, default: int | None, param: str = "limit") -> int | None:
    if limit is None:
        return default
    if limit < 0:
        raise InputError(f"{param} must be >= 0", [ErrorDetail(param, "must be >= 0")])
    return min(limit, MAX_LIMIT)


def _own_row_sort(key: str) -> SQLColumnExpression[str] | None:
    """The sort expression of a field the entity's own row holds (a column, or an
    annotation or label in metadata_maps); None for fields read from search rows."""
    column = _SORT_COLUMNS.get(key)
    if column is not None:
        return column
    if is_map_key(key):  # entities without it sort as the empty string
        return func.coalesce(MapValue(key), "")
    return None


def sort_expression(order_field: str | None) -> SQLColumnExpression[str]:
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


def _sort_key(field: str, joins: list[Subquery]) -> SQLColumnExpression[str]:
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
    keys: Sequence[tuple[SQLColumnExpression[str], bool]], values: Sequence[str]
) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order ``keys`` (expression, ascending)."""
    if len({ascending for _, ascending in keys}) == 1:
        # One direction: a row-value comparison, which an index on the columns can serve.
        left, right = tuple_(*(k for k, _ in keys)), tuple_(*(literal(v) for v in values))
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
    counted: bool = False,
) -> PageRows:
    """Up to ``limit`` rows after (next) or before (prev) ``position``, in display order.

    ``order_by`` is [(field, "asc"|"desc"), ...]; ties are broken by uid in the last
    field's direction, so the order is total and keyset positions are unambiguous.
    ``counted``: also how many rows match before the position, offset and limit apply
    (``PageRows.total``; None when no row came back), from the same pass: only for pages
    that sort their matches, which reads them all anyway.
    """
    order_by = list(order_by) or list(DEFAULT_ORDER)
    flip = direction != "next"
    joins: list[Subquery] = []
    keys: list[tuple[SQLColumnExpression[str], bool]] = [
        (_sort_key(field, joins), (order == "asc") != flip) for field, order in order_by
    ]
    keys.append((CatalogEntity.uid, keys[-1][1]))
    labels: list[Label[str]] = [
        key.label(f"sort_value_{i}") for i, (key, _) in enumerate(keys[:-1])
    ]
    source: Any = CatalogEntity.__table__
    for values in joins:
        source = source.outerjoin(values, values.c.uid == CatalogEntity.uid)
    documents = [CatalogEntity.entity_ref, CatalogEntity.body]
    if counted:
        # The count sees every match before the limit: the matches pass through it without
        # their documents (a buffer of every body spilled to disk: 2.5 s instead of 0.4
        # for 11,111 matches at 1M), which are read for the page's rows alone.
        columns = [CatalogEntity.uid, *labels, func.count().over().label("matching")]
    else:
        columns = [CatalogEntity.uid, *documents, *labels]
    query = select(*columns).select_from(source).where(where)
    if position is not None:
        query = query.where(_keyset_condition(keys, position))
    query = query.order_by(*_ordered(keys))
    if offset:
        query = query.offset(offset)
    query = query.limit(limit)
    if counted:
        chosen = query.subquery("chosen")
        sorted_by = [chosen.c[label.name] for label in labels]
        query = (
            select(chosen.c.uid, *documents, *sorted_by, chosen.c.matching)
            .join(chosen, chosen.c.uid == CatalogEntity.uid)
            .order_by(
                *_ordered(zip([*sorted_by, chosen.c.uid], [up for _, up in keys], strict=True))
            )
        )
    rows = PageRows()
    for r in fetch_tuples(session, query):
        sort_values = r[3:-1] if counted else r[3:]
        if counted:
            rows.total = int(r[-1])  # the same on every row
        if None in sort_values:  # entities without an order field sort as ""
            sort_values = tuple("" if v is None else str(v) for v in sort_values)
        rows.append(Row(r[0], r[1], r[2], sort_values))
    if direction == "prev":
        rows.reverse()
    return rows


def _ordered(keys: Iterable[tuple[Any, bool]]) -> list[Any]:
    """ORDER BY terms of (expression, ascending) pairs."""
    return [key.asc() if ascending else key.desc() for key, ascending in keys]


def count(
    session: Session,
    where: ColumnElement[bool],
    simple: SimpleFilter | None,
    alternatives: list[Conditions],
) -> tuple[int, int | None]:
    """How many entities match: from the running facet counts or one index range for
    simple filters (see ``SimpleFilter``), from the combination counts for filters of
    kind, namespace, type and lifecycle alone (``combo_counts``), else by counting the
    matching entities. With it, when the running counts answered, how many entities the
    filter's kinds hold (what ``EntityReads._dense`` weighs it against), read in the
    same statement."""
    several_values = simple is not None and len(simple.values) > 1
    if (simple is None or several_values) and combo_counts.answers(alternatives):
        combined = combo_counts.count_combinations(session, alternatives)
        if combined is not None:
            return combined
    if simple is not None:
        kinds = simple.kinds or None
        if simple.key is None:
            return count_value(session, "kind", kinds, None), None  # a kind's entities
        if len(simple.values) == 1 and is_counted(simple.key):
            # An entity holds a (key, value) once: rows of one value are entities.
            matches, population = count_values(
                session, [(simple.key, simple.values, kinds), ("kind", kinds, None)]
            )
            return matches, population
        if not is_column_key(simple.key):
            # One (key, value[, kind]) index range; distinct when an entity can hold
            # several of the values (two of the tags asked for).
            counted = (
                func.count()
                if len(simple.values) == 1
                else func.count(func.distinct(CatalogSearch.entity_uid))
            )
            query = select(counted).where(
                CatalogSearch.key == simple.key, CatalogSearch.value.in_(simple.values)
            )
            if kinds:
                query = query.where(CatalogSearch.kind.in_(kinds))
            return int(session.scalar(query) or 0), None
    counted_all = select(func.count()).select_from(CatalogEntity).where(where)
    return int(session.scalar(counted_all) or 0), None
