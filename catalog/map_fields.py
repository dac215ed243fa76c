"""SQL over ``catalog_entities.metadata_maps``: annotation and label conditions.

The column holds ``catalog.search.map_fields``' JSON text: lowercase path -> [lowercase
value, original value, ...]: JSONB on PostgreSQL, which answers conditions through a GIN
index on the column (containment ``@>`` for values, ``?`` for existence); SQLite
(the embedded default, small catalogs) reads the JSON with its JSON1 functions.

Each construct renders per dialect at compile time, so filter compilation stays
dialect-free, like the rest of ``catalog.filters``.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, literal, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from catalog.tables import CatalogEntity

_COLUMN = CatalogEntity.__table__.c.metadata_maps


def _sqlite_path(key: str, index: int | None = None) -> str | None:
    """SQLite JSON path with the key quoted (keys hold dots and slashes); None for a key
    with a double quote, which such a path cannot name and no entity has (validation
    refuses it): the caller answers without the column."""
    if '"' in key:
        return None
    return f'$."{key}"' + (f"[{index}]" if index is not None else "")


class _MapElement:
    """Reads catalog_entities: a select using one gets that table as its FROM."""

    @property
    def _from_objects(self) -> list[Any]:
        return [CatalogEntity.__table__]


class MapValue(_MapElement, ColumnElement[str]):
    """The first lowercase value (``index`` 0) or its original spelling (1) of ``key``;
    NULL where the entity has no such annotation or label."""

    type = String()
    inherit_cache = False  # parameters are made at compile time: never cache
    key: str  # ColumnElement's is str | None; these always name a map key

    def __init__(self, key: str, index: int = 0) -> None:
        self.key = key
        self.index = index


class MapHasKey(_MapElement, ColumnElement[bool]):
    """The entity has the annotation or label ``key``."""

    type = Boolean()
    inherit_cache = False
    key: str

    def __init__(self, key: str) -> None:
        self.key = key


class MapContains(_MapElement, ColumnElement[bool]):
    """``key`` has the lowercase ``value`` (one of its values, in the rare case of keys
    that differ in case alone)."""

    type = Boolean()
    inherit_cache = False
    key: str

    def __init__(self, key: str, value: str) -> None:
        self.key = key
        self.value = value


def _json_text(value: str) -> str:
    """``value`` as the writer spells it in the column's JSON text (search.map_fields).

    SQLite has no index on the column; a byte search for this spelling (``instr``)
    discards the entities that cannot match before their JSON is parsed (a scan of 20k
    entities: ~100 ms parsing each, a few ms searching). It never discards a match: the
    writer's JSON holds every key and value in exactly this spelling.
    """
    return json.dumps(value, ensure_ascii=False)


# SQLite conditions read the column in a subquery of their own (see _sqlite_matching).
_SCAN = "map_scan.metadata_maps"


def _sqlite_matching(compiler: SQLCompiler, condition: str, **kw: Any) -> str:
    """``uid IN (the uids whose metadata_maps meet condition)``, on SQLite.

    Written in place, SQLite's planner walks the name index for a page (no sort) and
    tests every entity in name order, a random row read each: ~32 ms at 20k entities for
    a kubernetes-id filter. As a list subquery it scans the table once in storage order
    and sorts the few matches: ~13 ms.
    """
    uid = compiler.process(CatalogEntity.__table__.c.uid, **kw)
    return f"({uid} IN (SELECT map_scan.uid FROM catalog_entities AS map_scan WHERE {condition}))"


def _bind(compiler: SQLCompiler, value: Any, **kw: Any) -> str:
    return compiler.process(literal(value), **kw)


@compiles(MapValue, "postgresql")
def _value_pg(element: MapValue, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(_COLUMN, **kw)
    return f"({column} -> {_bind(compiler, element.key, **kw)} ->> {element.index})"


@compiles(MapValue)
def _value_sqlite(element: MapValue, compiler: SQLCompiler, **kw: Any) -> str:
    path = _sqlite_path(element.key, element.index)
    if path is None:
        return "NULL"
    column = compiler.process(_COLUMN, **kw)
    return f"json_extract({column}, {_bind(compiler, path, **kw)})"


@compiles(MapHasKey, "postgresql")
def _has_key_pg(element: MapHasKey, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(_COLUMN, **kw)
    return f"({column} ? {_bind(compiler, element.key, **kw)})"


@compiles(MapHasKey)
def _has_key_sqlite(element: MapHasKey, compiler: SQLCompiler, **kw: Any) -> str:
    path = _sqlite_path(element.key)
    if path is None:
        return "0"
    path = _bind(compiler, path, **kw)
    probe = _bind(compiler, _json_text(element.key) + ":", **kw)
    return _sqlite_matching(
        compiler, f"instr({_SCAN}, {probe}) > 0 AND json_type({_SCAN}, {path}) IS NOT NULL", **kw
    )


@compiles(MapContains, "postgresql")
def _contains_pg(element: MapContains, compiler: SQLCompiler, **kw: Any) -> str:
    # Containment, which the GIN index (jsonb_ops) serves: the key's array holds value.
    column = compiler.process(_COLUMN, **kw)
    probe = _bind(compiler, json.dumps({element.key: [element.value]}), **kw)
    return f"({column} @> CAST({probe} AS JSONB))"


@compiles(MapContains)
def _contains_sqlite(element: MapContains, compiler: SQLCompiler, **kw: Any) -> str:
    path = _sqlite_path(element.key)
    if path is None:
        return "0"
    path = _bind(compiler, path, **kw)
    value = _bind(compiler, element.value, **kw)
    probe = _bind(compiler, _json_text(element.value), **kw)
    # Every other item is an original spelling; matching it as well changes nothing (the
    # lowercase value is matched, and an original equal to it is its own lowercase).
    return _sqlite_matching(
        compiler,
        f"instr({_SCAN}, {probe}) > 0 AND EXISTS (SELECT 1 FROM json_each({_SCAN}, {path}) "
        f"WHERE json_each.value = {value})",
        **kw,
    )


def map_condition(key: str, values: list[str] | None) -> ColumnElement[bool]:
    """``key[=value...]`` for an annotation or label key (lowercase key and values)."""
    if not values:
        return MapHasKey(key)
    return or_(*(MapContains(key, value) for value in values))
