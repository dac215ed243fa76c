"""Bulk row writes: PostgreSQL COPY, executemany elsewhere.

Importing tens of thousands of entities means millions of search rows; COPY on the
session's own connection (same transaction) is an order of magnitude faster than
INSERT batches, and SQLite's executemany is already fast in-process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

# COPY runs on the raw psycopg connection, so its errors are psycopg's, not SQLAlchemy's.
from psycopg import IntegrityError as DatabaseIntegrityError  # noqa: F401 (re-exported)
from sqlalchemy import String, Table, any_, insert, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session


def insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    rows = list(rows)
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        column_list = ", ".join(f'"{c}"' for c in columns)
        with driver.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f'COPY "{table.name}" ({column_list}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
        return
    session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def any_of(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """``column IN values``; one array parameter on PostgreSQL instead of N parameters.

    Thousands of bind parameters cost more to send and parse than the query itself.
    """
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(values), type_=ARRAY(String)))
    return column.in_(values)
