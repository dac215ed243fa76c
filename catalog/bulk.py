"""Bulk row writes: PostgreSQL COPY, executemany elsewhere.

Importing tens of thousands of entities means millions of search rows; COPY on the
session's own connection (same transaction) is an order of magnitude faster than
INSERT batches, and SQLite's executemany is already fast in-process.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from psycopg import Copy, IntegrityError
from sqlalchemy import String, Table, any_, func, insert, literal, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from catalog.facet_counts import compact_counts

# COPY runs on the raw psycopg connection, so its errors are psycopg's, not SQLAlchemy's.
DatabaseIntegrityError = IntegrityError


def insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    rows = list(rows)
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        text_block = _copy_text(rows)
        with _copy(session, table, columns) as copy:
            if text_block is not None:
                copy.write(text_block)
            else:
                for row in rows:
                    copy.write_row(row)
        return
    session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def delete_search_rows(session: Session, rows: Sequence[Sequence[str]]) -> None:
    """Delete ``catalog_search`` rows by primary key: (key, value, kind, entity_uid).

    PostgreSQL: one statement joining the rows as arrays (one index probe each);
    SQLite: executemany, in process.
    """
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        keys, values, kinds, uids = (list(column) for column in zip(*rows, strict=True))
        session.execute(
            text(
                "DELETE FROM catalog_search s USING unnest("
                "CAST(:keys AS text[]), CAST(:values AS text[]), CAST(:kinds AS text[]), "
                "CAST(:uids AS text[])) AS d(key, value, kind, entity_uid) "
                "WHERE s.key = d.key AND s.value = d.value AND s.kind = d.kind "
                "AND s.entity_uid = d.entity_uid"
            ),
            {"keys": keys, "values": values, "kinds": kinds, "uids": uids},
        )
        return
    session.execute(
        text(
            "DELETE FROM catalog_search WHERE key = :k AND value = :v AND kind = :kind "
            "AND entity_uid = :u"
        ),
        [{"k": k, "v": v, "kind": kind, "u": u} for k, v, kind, u in rows],
    )


@contextmanager
def _copy(session: Session, table: Table, columns: Sequence[str]) -> Iterator[Copy]:
    """A ``COPY table (columns) FROM STDIN`` on the session's connection and transaction."""
    driver = session.connection().connection.driver_connection
    column_list = ", ".join(f'"{c}"' for c in columns)
    # driver_connection is typed Optional; a checked-out connection always has one.
    with driver.cursor() as cursor:  # type: ignore[union-attr]  # see above
        with cursor.copy(f'COPY "{table.name}" ({column_list}) FROM STDIN') as copy:
            yield copy


def copy_text(session: Session, table: Table, columns: Sequence[str], block: str) -> None:
    """COPY rows already in COPY's text format (PostgreSQL only), on the session's
    connection and transaction."""
    with _copy(session, table, columns) as copy:
        copy.write(block)


def escape_copy(value: str) -> str:
    """A value escaped for COPY's text format (backslash, tab, newline, carriage return)."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _copy_text(rows: list[Sequence[Any]]) -> str | None:
    """COPY's text format for rows of strings, None, numbers and datetimes (None: a value
    of another type, which psycopg formats).

    Search and relation rows are all strings, ~25 per entity; joining them here costs
    ~1 us a row against ~2 us for psycopg's per-row ``write_row`` (an entity row, with
    its NULLs and dates: ~10 us). A row with a tab, newline, carriage return or
    backslash in a value is escaped value by value.
    """
    lines = []
    for row in rows:
        try:
            line = "\t".join(row)
        except TypeError:
            # NULL as a NUL character (never in a PostgreSQL text value) until checked.
            values = [value if type(value) is str else _copy_value(value) for value in row]
            if any(value is None for value in values):
                return None
            line = "\t".join(values)  # type: ignore[arg-type]  # no None left (checked above)
        if line.count("\t") != len(row) - 1 or "\\" in line or "\n" in line or "\r" in line:
            line = "\t".join(_escaped(value) for value in row)
        lines.append(line.replace("\0", "\\N"))
    lines.append("")
    return "\n".join(lines)


def _escaped(value: Any) -> str:
    if value is None:
        return "\\N"
    return escape_copy(value if isinstance(value, str) else str(value))


def _copy_value(value: Any) -> str | None:
    """A non-string value in COPY's text format (NUL standing for NULL); None when it
    is of another type."""
    if value is None:
        return "\0"
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | datetime):
        return str(value)  # an aware datetime prints as timestamptz reads it
    return None


def fetch_tuples(
    session: Session, statement: Any, params: dict[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """Every row of ``statement`` as a plain tuple, straight from the driver's cursor.

    For reads of thousands of text columns (listings, relations): SQLAlchemy's row
    objects cost about a microsecond a row, a third of a listing's CPU. Only for columns
    that need no conversion from what the driver returns.
    """
    result = session.connection().execute(statement, params or {})
    try:
        return list(result.cursor.fetchall()) if result.cursor is not None else []
    finally:
        result.close()


# Rows per statement where a batch is read or deleted by a list of keys.
CHUNK = 1000


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def any_of(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """``column IN values``; one array parameter on PostgreSQL instead of N parameters.

    Thousands of bind parameters cost more to send and parse than the query itself.
    """
    if session.get_bind().dialect.name == "postgresql":
        if all(isinstance(v, str) and "," not in v for v in values):
            # Names, refs and uids (never a comma): one text the server splits, which
            # costs less to send than an array psycopg quotes element by element.
            return column == any_(func.string_to_array(",".join(values), ","))
        return column == any_(literal(list(values), type_=ARRAY(String)))
    return column.in_(values)


# Re-analyse when the rows written since the last ANALYZE reach this share of the rows
# it counted, i.e. each time the table grows about fourfold. Missing statistics are what
# misleads the planner; between analyses it scales row estimates by the table's current
# size itself, and each ANALYZE costs ~0.5 s of a 2-core machine (it was most of an
# import's time at a 0.2 share; at 1.0, a doubling, ~7% of a 100k import's CPU).
_STALE_SHARE = 3.0
_MIN_ROWS = 2000
_ANALYZE_LOCK = "rag-portal:catalog-analyze"


def refresh_statistics(session: Session, written_rows: int) -> None:
    """ANALYZE the catalog tables after bulk writes that make their statistics stale.

    Without statistics PostgreSQL plans multi-condition filters over the search rows as
    if every key held a handful of rows (seconds instead of milliseconds right after an
    import); autovacuum catches up only a minute or more later. Runs inside the
    writer's transaction: it blocks neither readers nor other writers. Also folds the
    facet-count deltas when they have piled up.
    """
    compact_counts(session)
    if written_rows < _MIN_ROWS:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return
    row = connection.execute(
        text(
            "SELECT c.reltuples, coalesce(s.n_mod_since_analyze, 0) FROM pg_class c "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE c.oid = to_regclass('catalog_search')"
        )
    ).first()
    if row is None:
        return
    counted, modified = float(row[0]), int(row[1])
    if counted >= 0 and modified + written_rows < _STALE_SHARE * max(counted, 1.0):
        return
    # ANALYZE holds a lock that a second ANALYZE of the same table waits for until the
    # first writer commits; parallel importers would queue behind each other. One is
    # enough: the others skip (the statistics they would gather are the same).
    if not connection.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || :k))"),
        {"k": _ANALYZE_LOCK},
    ).scalar():
        return
    # catalog_search whole: a column list would leave its modification counter (the
    # staleness measure above) unreset. The entity table only on the columns queries
    # filter and sort on: its documents (large, toasted text) would double the cost.
    connection.execute(text("ANALYZE catalog_search, catalog_relations"))
    connection.execute(
        text("ANALYZE catalog_entities (uid, entity_ref, kind, namespace, name, location_key)")
    )
