"""Running facet counts (PostgreSQL): read them, and fold their deltas now and then.

See ``catalog.tables.CatalogFacetCount``: writers append a delta row per (key, value,
kind) they insert (``inserted_deltas``), triggers on ``catalog_search`` one per group a
statement deletes or updates; a key's facet is the sum of its deltas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from sqlalchemy import Select, func, select, text
from sqlalchemy.orm import Session

from catalog.tables import COUNTED_KEYS, CatalogFacetCount

# Fold the deltas into one row per group when the table holds more rows than this
# (an import of 100k entities appends ~25k; reading 30k deltas costs ~5 ms).
COMPACT_AFTER_ROWS = 20_000
_COMPACT_LOCK = "rag-portal:catalog-facet-counts"
_COUNTED = frozenset(COUNTED_KEYS)


def has_counts(session: Session, key: str) -> bool:
    """Whether ``key``'s facet counts are kept (PostgreSQL, one of COUNTED_KEYS)."""
    return key in COUNTED_KEYS and session.get_bind().dialect.name == "postgresql"


def count_groups(key: str, kinds: Sequence[str] | None) -> Select[tuple[str, int]]:
    """(value, n) per value of ``key`` with n > 0, like a GROUP BY over the search rows."""
    total = func.sum(CatalogFacetCount.n)
    query = select(CatalogFacetCount.value, total.label("n")).where(CatalogFacetCount.key == key)
    if kinds:
        query = query.where(CatalogFacetCount.kind.in_(kinds))
    return query.group_by(CatalogFacetCount.value).having(total > 0)


def count_value(session: Session, key: str, value: str, kinds: Sequence[str] | None) -> int:
    """How many entities (of ``kinds``) have ``value`` under ``key``.

    One value only: an entity holds a (key, value) once, so rows are entities; with
    several values an entity holding two of them would count twice.
    """
    query = select(func.coalesce(func.sum(CatalogFacetCount.n), 0)).where(
        CatalogFacetCount.key == key, CatalogFacetCount.value == value
    )
    if kinds:
        query = query.where(CatalogFacetCount.kind.in_(kinds))
    return int(session.connection().execute(query).scalar_one())


def inserted_deltas(rows: Iterable[Sequence[str]]) -> list[tuple[str, str, str, str]]:
    """Delta rows (key, value, kind, n as text) counting new search rows
    (key, value, kind, ...) of the counted keys, one per group, in group order.

    What the insert trigger of migration 0007 appended per statement; the writer adds
    them itself since 0008 (that trigger copied every inserted row into a transition
    table and grouped them again: ~45 us per imported entity of PostgreSQL's CPU).
    Deletes and updates of search rows are still counted by triggers.
    """
    counts = Counter((row[0], row[1], row[2]) for row in rows if row[0] in _COUNTED)
    return [(k, v, kind, str(n)) for (k, v, kind), n in sorted(counts.items())]


def compact_counts(session: Session) -> None:
    """Fold the deltas into one row per group once there are many (writers call this).

    Runs in the writer's transaction. Only rows committed before the statement (and the
    writer's own) are folded; deltas of transactions still running stay as they are and
    are folded next time. One writer folds at a time; the others skip.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return
    rows = connection.execute(
        text(
            "SELECT coalesce(n_live_tup, 0) FROM pg_stat_user_tables "
            "WHERE relid = to_regclass('catalog_facet_counts')"
        )
    ).scalar()
    if rows is None or rows < COMPACT_AFTER_ROWS:
        return
    locked = connection.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtext(:k))"), {"k": _COMPACT_LOCK}
    ).scalar()
    if not locked:
        return
    connection.execute(
        text(
            "WITH folded AS (DELETE FROM catalog_facet_counts RETURNING key, value, kind, n) "
            "INSERT INTO catalog_facet_counts (key, value, kind, n) "
            "SELECT key, value, kind, sum(n) FROM folded GROUP BY key, value, kind "
            "HAVING sum(n) <> 0 ORDER BY key, value, kind"
        )
    )
