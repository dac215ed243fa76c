"""Backstage's predicate ``query`` objects, compiled onto ``catalog.filters``' conditions.

``{"kind": "component", "spec.type": {"$in": ["service", "website"]}}`` (keys ANDed),
``{"$all": [...]}``, ``{"$any": [...]}``, ``{"$not": {...}}``, ``{"key": {"$exists": bool}}``.
Each leaf is one condition of ``catalog.filters`` (same keys, relations and
case-insensitive matching as ``filter=``); only the boolean structure is new here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, or_, true

from catalog.errors import ErrorDetail, InputError
from catalog.filters import condition

_SCALARS = (str, int, float, bool)


def _bad(path: str, message: str) -> InputError:
    return InputError(f"invalid query at {path}: {message}", [ErrorDetail(path, message)])


def _value(value: Any, path: str) -> str:
    if not isinstance(value, _SCALARS):
        raise _bad(path, "a value must be a string, number or boolean")
    if isinstance(value, bool):  # JSON spelling, as the search index stores it
        return "true" if value else "false"
    return str(value).lower()


def _leaf(key: str, spec: Any, path: str) -> ColumnElement[bool]:
    key = key.strip().lower()
    if not key:
        raise _bad(path, "field paths must not be empty")
    if isinstance(spec, dict):
        if set(spec) == {"$in"}:
            values = spec["$in"]
            if not isinstance(values, list) or not values:
                raise _bad(f"{path}.$in", "$in takes a non-empty list of values")
            return condition(key, [_value(v, f"{path}.$in[{i}]") for i, v in enumerate(values)])
        if set(spec) == {"$exists"}:
            if not isinstance(spec["$exists"], bool):
                raise _bad(f"{path}.$exists", "$exists takes true or false")
            exists = condition(key, None)
            return exists if spec["$exists"] else not_(exists)
        raise _bad(path, "a field takes a value, {$in: [...]} or {$exists: true|false}")
    return condition(key, [_value(spec, path)])


Leaf = Callable[[str, Any, str], ColumnElement[bool]]


def compile_predicate(
    query: Any, path: str = "query", leaf: Leaf | None = None
) -> ColumnElement[bool]:
    """SQL condition for a predicate object; InputError naming the bad path otherwise.

    ``leaf(field, spec, path)`` compiles one field's condition: entity fields over the
    search index by default; other tables (locations) pass their own.
    """
    leaf = leaf or _leaf
    if not isinstance(query, dict):
        raise _bad(path, "a predicate must be an object")
    parts: list[ColumnElement[bool]] = []
    for key, spec in query.items():
        here = f"{path}.{key}"
        if key in ("$all", "$any"):
            if not isinstance(spec, list):
                raise _bad(here, f"{key} takes a list of predicates")
            subs = [compile_predicate(p, f"{here}[{i}]", leaf) for i, p in enumerate(spec)]
            # An empty $all matches everything, an empty $any nothing (as in Backstage).
            parts.append(
                and_(true(), *subs) if key == "$all" else or_(*subs) if subs else not_(true())
            )
        elif key == "$not":
            parts.append(not_(compile_predicate(spec, here, leaf)))
        elif key.startswith("$"):
            raise _bad(here, "unknown operator; use $all, $any or $not")
        else:
            parts.append(leaf(key, spec, here))
    return and_(true(), *parts)
