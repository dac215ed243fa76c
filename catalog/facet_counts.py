"""Running facet counts: read them, append the writers' deltas, fold them now and then
(these and the combination counts of ``catalog.combo_counts``).

See ``catalog.tables.CatalogFacetCount``: every writer of search rows appends one delta
row per (key, value, kind) of the counted keys it inserts or deletes (``deltas``), in
its own transaction, on both databases; a group's count is the sum of its deltas.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, func, select, text
from sqlalchemy.orm import Session

from catalog.tables import COMBO_COLUMNS, COUNTED_KEYS, CatalogFacetCount

# Fold the deltas into one row per group when the table holds more rows than this
# (an import of 100k entities appends ~25k; reading 30k deltas costs ~5 ms).
COMPACT_AFTER_ROWS = 20_000
_COMPACT_LOCK = "rag-portal:catalog-facet-counts"
_COUNTED = frozenset(COUNTED_KEYS)


def is_counted(key: str) -> bool:
    """Whether running counts are kept for ``key`` (one of COUNTED_KEYS)."""
    return key in _COUNTED


def count_groups(key: str, kinds: Sequence[str] | None) -> Select[tuple[str, int]]:
    """(value, n) per value of ``key`` with n > 0, like a GROUP BY over the search rows."""
    total = func.sum(CatalogFacetCount.n)
    query = select(CatalogFacetCount.value, total.label("n")).where(CatalogFacetCount.key == key)
    if kinds:
        query = query.where(CatalogFacetCount.kind.in_(kinds))
    return query.group_by(CatalogFacetCount.value).having(total > 0)


# A group of search rows to count: (key, values or None for any, kinds or None for any).
Group = tuple[str, Sequence[str] | None, Sequence[str] | None]


def count_values(session: Session, groups: Sequence[Group]) -> list[int]:
    """Per group, how many search rows (of its kinds) have one of its values (any value:
    None) under its key, summed from the running counts; all groups in one statement.

    These are entities when an entity can hold only one of the values (one value asked
    for, or a key that holds one value per entity such as ``kind``).
    """
    # SQL text: built from expression objects, this statement's cache key alone cost a
    # fifth of a by-query request's CPU.
    params: dict[str, Any] = {}
    lists: list[str] = []
    conditions = []
    for index, (key, values, kinds) in enumerate(groups):
        parts = [f"key = :key_{index}"]
        params[f"key_{index}"] = key
        for column, name, listed in (("value", "values", values), ("kind", "kinds", kinds)):
            if listed:
                parts.append(f"{column} IN :{name}_{index}")
                params[f"{name}_{index}"] = list(listed)
                lists.append(f"{name}_{index}")
        conditions.append("(" + " AND ".join(parts) + ")")
    sums = ", ".join(f"coalesce(sum(CASE WHEN {c} THEN n ELSE 0 END), 0)" for c in conditions)
    statement = text(
        f"SELECT {sums} FROM catalog_facet_counts WHERE {' OR '.join(conditions)}"
    ).bindparams(*(bindparam(name, expanding=True) for name in lists))
    row = session.connection().execute(statement, params).one()
    return [int(value) for value in row]


def count_value(
    session: Session, key: str, values: Sequence[str] | None, kinds: Sequence[str] | None
) -> int:
    """``count_values`` of one group."""
    return count_values(session, [(key, values, kinds)])[0]


def deltas(rows: Iterable[Sequence[str]], sign: int = 1) -> list[tuple[str, str, str, int]]:
    """Delta rows (key, value, kind, n) counting search rows (key, value, kind, ...) of the
    counted keys that are inserted (``sign`` 1) or deleted (-1), one per group, in group
    order."""
    counts = Counter((row[0], row[1], row[2]) for row in rows if row[0] in _COUNTED)
    return [(k, v, kind, sign * n) for (k, v, kind), n in sorted(counts.items())]


# Delta tables folded by ``compact_counts``: table -> the columns a group is made of.
_FOLDED = {
    "catalog_facet_counts": ("key", "value", "kind"),
    "catalog_combo_counts": COMBO_COLUMNS,
}


def compact_counts(session: Session) -> None:
    """Fold the deltas of the facet and combination counts into one row per group once
    there are many (writers call this).

    Runs in the writer's transaction. On PostgreSQL only rows committed before the
    statement (and the writer's own) are folded; deltas of transactions still running
    stay as they are and are folded next time; one writer folds at a time, the others
    skip. SQLite has one writer at a time: it folds everything.
    """
    for table, columns in _FOLDED.items():
        _compact(session, table, columns)


def _compact(session: Session, table: str, columns: tuple[str, ...]) -> None:
    connection = session.connection()
    listed = ", ".join(columns)
    if connection.dialect.name != "postgresql":
        rows = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
        if not rows or rows < COMPACT_AFTER_ROWS:
            return
        folded = connection.execute(
            text(f"SELECT {listed}, sum(n) FROM {table} GROUP BY {listed} HAVING sum(n) <> 0")
        ).all()
        connection.execute(text(f"DELETE FROM {table}"))
        if folded:
            values = ", ".join(f":{column}" for column in (*columns, "n"))
            connection.execute(
                text(f"INSERT INTO {table} ({listed}, n) VALUES ({values})"),
                [dict(zip((*columns, "n"), row, strict=True)) for row in folded],
            )
        return
    rows = connection.execute(
        text(
            "SELECT coalesce(n_live_tup, 0) FROM pg_stat_user_tables "
            "WHERE relid = to_regclass(:table)"
        ),
        {"table": table},
    ).scalar()
    if rows is None or rows < COMPACT_AFTER_ROWS:
        return
    locked = connection.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || :k))"),
        {"k": f"{_COMPACT_LOCK}:{table}"},
    ).scalar()
    if not locked:
        return
    connection.execute(
        text(
            f"WITH folded AS (DELETE FROM {table} RETURNING {listed}, n) "
            f"INSERT INTO {table} ({listed}, n) "
            f"SELECT {listed}, sum(n) FROM folded GROUP BY {listed} "
            f"HAVING sum(n) <> 0 ORDER BY {listed}"
        )
    )
