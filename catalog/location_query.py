"""``POST /locations/by-query``: registered locations matching a predicate, by pages.

Backstage's catalog-client ``queryLocations`` / ``streamLocations``. The predicate is the
one of ``POST /entities/by-query`` (``$all``, ``$any``, ``$not``, field values, ``$in``,
``$exists``) plus ``$hasPrefix``, over a location's fields ``id``, ``type`` and
``target``; values match case-insensitively, as entity filters do. Pages are in
registration order, keyset-paged on (created_at, id) so that a cursor stays valid while
locations are added or removed; the cursor carries the predicate, so a later page only
sends ``{cursor}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, not_, select, true, tuple_
from sqlalchemy.orm import Session

from catalog.cursor import DECODE_ERRORS, pack, unpack
from catalog.errors import ErrorDetail, InputError
from catalog.location_registry import location_view
from catalog.predicates import _bad, compile_predicate
from catalog.tables import CatalogLocation

FIELDS = {
    "id": CatalogLocation.id,
    "type": CatalogLocation.type,
    "target": CatalogLocation.target,
}
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
_SCALARS = (str, int, float, bool)


def _text(value: Any, path: str) -> str:
    if not isinstance(value, _SCALARS):
        raise _bad(path, "a value must be a string, number or boolean")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _leaf(field: str, spec: Any, path: str) -> ColumnElement[bool]:
    column = FIELDS.get(field)
    if column is None:
        raise _bad(path, f"locations have the fields {', '.join(FIELDS)}; not {field!r}")
    lowered = func.lower(column)
    if not isinstance(spec, dict):
        return lowered == _text(spec, path)
    if len(spec) != 1:
        raise _bad(path, "a field takes a value or one of {$in}, {$exists}, {$hasPrefix}")
    [(matcher, operand)] = spec.items()
    here = f"{path}.{matcher}"
    if matcher == "$in":
        if not isinstance(operand, list) or not operand:
            raise _bad(here, "$in takes a non-empty list of values")
        return lowered.in_([_text(v, f"{here}[{i}]") for i, v in enumerate(operand)])
    if matcher == "$exists":
        if not isinstance(operand, bool):
            raise _bad(here, "$exists takes true or false")
        return true() if operand else not_(true())  # every location has every field
    if matcher == "$hasPrefix":
        if not isinstance(operand, str):
            raise _bad(here, "$hasPrefix takes a string")
        return lowered.like(_escape_like(operand.lower()) + "%", escape="\\")
    raise _bad(path, f"unsupported matcher {matcher!r}; use $in, $exists or $hasPrefix")


def compile_location_predicate(query: Any, path: str = "query") -> ColumnElement[bool]:
    """SQL condition over catalog_locations; InputError naming the bad path otherwise."""
    return compile_predicate(query, path, _leaf)


def _decode_cursor(text: Any) -> dict[str, Any]:
    problem = "cursor is not one this server issued; start again without it"
    if not isinstance(text, str) or not text:
        raise InputError(problem, [ErrorDetail("cursor", "malformed")])
    try:
        data = unpack(text)
        after = data["after"]
        if not (
            isinstance(data, dict)
            and isinstance(data.get("limit"), int)
            and isinstance(after, list)
            and len(after) == 2
            and all(isinstance(part, str) for part in after)
        ):
            raise ValueError("bad shape")
        datetime.fromisoformat(after[0])
    except DECODE_ERRORS:
        raise InputError(problem, [ErrorDetail("cursor", "malformed")]) from None
    return data


def _limit(value: Any) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InputError(
            f"limit must be an integer from 1 to {MAX_LIMIT}",
            [ErrorDetail("limit", f"1..{MAX_LIMIT}")],
        )
    return value


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive UTC; PostgreSQL an aware timestamp.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def query_locations(session: Session, request: Any) -> dict[str, Any]:
    """``{items, totalItems, pageInfo: {nextCursor?}}`` for a by-query body."""
    if request is None:
        request = {}
    if not isinstance(request, dict):
        raise InputError("body must be an object", [ErrorDetail("", "an object")])
    unknown = sorted(set(request) - {"limit", "query", "cursor"})
    if unknown:
        raise InputError(
            f"unknown field(s) {', '.join(unknown)}; send {{limit, query}} or {{cursor}}",
            [ErrorDetail(name, "unknown field") for name in unknown],
        )
    after: list[str] | None = None
    if "cursor" in request:
        cursor = _decode_cursor(request["cursor"])
        query, limit, after = cursor.get("query"), _limit(cursor["limit"]), cursor["after"]
    else:
        query, limit = request.get("query"), _limit(request.get("limit"))
    where = compile_location_predicate(query) if query is not None else true()
    total = int(session.scalar(select(func.count()).select_from(CatalogLocation).where(where)))
    statement = select(CatalogLocation).where(where)
    if after is not None:
        moment = _utc(datetime.fromisoformat(after[0]))
        if session.get_bind().dialect.name == "sqlite":
            moment = moment.replace(tzinfo=None)  # stored as naive UTC text
        statement = statement.where(
            tuple_(CatalogLocation.created_at, CatalogLocation.id)
            > tuple_(literal(moment), literal(after[1]))
        )
    rows = list(
        session.scalars(
            statement.order_by(CatalogLocation.created_at, CatalogLocation.id).limit(limit + 1)
        )
    )
    page_info: dict[str, str] = {}
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        page_info["nextCursor"] = pack(
            {
                "query": query,
                "limit": limit,
                "after": [_utc(last.created_at).isoformat(), last.id],
            }
        )
    return {"items": [location_view(r) for r in rows], "totalItems": total, "pageInfo": page_info}
