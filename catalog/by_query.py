"""``GET /entities/by-query`` as one function of its parameters, so the HTTP route and the
MCP server's search tool answer the same query the same way."""

from __future__ import annotations

from sqlalchemy.orm import Session

from catalog.api_models import EntityQueryParams
from catalog.entity_reads import EntityReads, check_order_by
from catalog.errors import ErrorDetail, InputError
from catalog.filters import parse_filters


def split_values(values: list[str]) -> list[str]:
    """``a,b`` and repeated parameters alike, as one list."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def order_pairs(directives: list[str], *, param: str = "orderField") -> list[tuple[str, str]]:
    """Every ``field,asc|desc`` directive in order (the first is the most significant)."""
    pairs: list[tuple[str, str]] = []
    for index, directive in enumerate(directives):
        field, _, order = directive.partition(",")
        order = (order or "asc").strip().lower()
        if not field.strip() or order not in ("asc", "desc"):
            raise InputError(
                f"invalid {param} {directive!r}; use e.g. metadata.name,asc",
                [ErrorDetail(f"{param}[{index}]", "expected metadata.name,asc")],
            )
        pairs.append((field.strip(), order))
    return check_order_by(pairs, param=param)


def query_json(session: Session, params: EntityQueryParams) -> str:
    """The page as JSON text: ``{items, totalItems, pageInfo: {nextCursor, prevCursor}}``."""
    if params.cursor is None:
        parse_filters(params.filter)  # a 400 naming the bad condition before any work
    return EntityReads(session).query_entities_json(
        filters=params.filter,
        order_by=order_pairs(params.orderField),
        term=params.fullTextFilterTerm,
        term_fields=split_values(params.fullTextFilterFields),
        cursor=params.cursor,
        limit=params.limit,
        offset=params.offset or 0,
        fields=split_values(params.fields),
        include_total=params.totalItems != "exclude",
    )
