"""Writing and deleting an entity's search rows (``catalog_search``).

The rows are what ``catalog.search.search_rows`` makes of a stored document; every
search row goes in and out through here, with the facet-count deltas that count them
(``catalog.facet_counts``) and the combination-count deltas (``catalog.combo_counts``)
in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from catalog import combo_counts
from catalog.bulk import copy_text, delete_search_rows, escape_copy, insert_rows
from catalog.facet_counts import deltas
from catalog.search import search_rows
from catalog.tables import COUNTED_KEYS, CatalogFacetCount, CatalogSearch

SEARCH_COLUMNS = ("key", "value", "kind", "entity_uid", "original_value")
_COUNTED = frozenset(COUNTED_KEYS)


def search_tuples(uid: str, body: dict[str, Any]) -> list[tuple[str, ...]]:
    """The ``SEARCH_COLUMNS`` rows of one document."""
    kind = str(body.get("kind", "")).lower()
    return [(k, v, kind, uid, o) for k, v, o in search_rows(body)]


def _append_deltas(session: Session, rows: Iterable[tuple[str, str, str, int]]) -> None:
    insert_rows(
        session,
        CatalogFacetCount.__table__,
        ("key", "value", "kind", "n"),
        rows,
    )


def delete_search(session: Session, stored: Iterable[tuple[str, str]]) -> None:
    """Delete the search rows of (uid, stored JSON text) pairs: the rows ``search_rows``
    makes of each document, by primary key (``bulk.delete_search_rows``), and count
    them out of the facet counts."""
    rows: list[tuple[str, ...]] = []
    combinations = []
    for uid, text in stored:
        body = json.loads(text)
        entity_rows = [row[:4] for row in search_tuples(uid, body)]
        rows.extend(entity_rows)
        combinations.append(_combination(body, entity_rows))
    delete_search_rows(session, rows)
    _append_deltas(session, deltas(rows, -1))
    combo_counts.append_deltas(session, combo_counts.deltas(combinations, -1))


def _combination(body: dict[str, Any], rows: Iterable[Sequence[str]]) -> combo_counts.Combination:
    kind = str(body.get("kind", "")).lower()
    return combo_counts.combination(kind, ((row[0], row[1]) for row in rows))


def insert_search(session: Session, entities: Sequence[tuple[str, dict[str, Any]]]) -> int:
    """Write the search rows of (uid, document) pairs; returns how many rows.

    On PostgreSQL the COPY text is built per entity in one pass (values are checked for
    COPY's special characters per entity, not per value), and the facet-count deltas go
    in the same transaction.
    """
    table = CatalogSearch.__table__
    if session.get_bind().dialect.name != "postgresql":
        tuples = []
        combinations = []
        for uid, body in entities:
            entity_rows = search_tuples(uid, body)
            tuples.extend(entity_rows)
            combinations.append(_combination(body, entity_rows))
        insert_rows(session, table, SEARCH_COLUMNS, tuples)
        _append_deltas(session, deltas(tuples))
        combo_counts.append_deltas(session, combo_counts.deltas(combinations))
        return len(tuples)
    chunks: list[str] = []
    counted: list[tuple[str, str, str]] = []
    combinations = []
    total = 0
    for uid, body in entities:
        kind = str(body.get("kind", "")).lower()
        rows = search_rows(body)
        combinations.append(combo_counts.combination(kind, ((k, v) for k, v, _ in rows)))
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
        copy_text(session, table, SEARCH_COLUMNS, "\n".join(chunks) + "\n")
        _append_deltas(session, deltas(counted))
    combo_counts.append_deltas(session, combo_counts.deltas(combinations))
    return total
