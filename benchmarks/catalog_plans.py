"""The SQL behind a catalog read, and how the database runs it (for benchmarks/catalog.py).

``explain(factory, call)`` runs ``call(session)`` (an ``EntityReads`` method, say) once
with every statement it sends captured, then asks the database how it ran each one:
``EXPLAIN (ANALYZE, BUFFERS)`` on PostgreSQL (the plan with real row counts and times),
``EXPLAIN QUERY PLAN`` plus the median of 5 timed executions on SQLite (which has no
ANALYZE form).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker


def captured_statements(
    factory: sessionmaker[Session], call: Callable[[Session], Any]
) -> list[tuple[str, Any]]:
    """(SQL text, driver parameters) of every statement ``call`` runs, in order."""
    statements: list[tuple[str, Any]] = []
    engine = factory.kw["bind"]

    def record(_conn, _cursor, statement, parameters, _context, _executemany):  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with factory() as session:
            call(session)
            session.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return statements


def explain(factory: sessionmaker[Session], call: Callable[[Session], Any]) -> list[str]:
    """Lines: each statement ``call`` runs, then how the database ran it."""
    lines: list[str] = []
    engine = factory.kw["bind"]
    for number, (statement, parameters) in enumerate(captured_statements(factory, call), 1):
        lines.append(f"-- statement {number}:")
        lines.extend("   " + line for line in " ".join(statement.split()).splitlines())
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                plan = connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                ).scalars()
                lines.extend("   " + str(row) for row in plan)
            else:
                plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                lines.extend(f"   {row[-1]}" for row in plan)
                times = []
                for _ in range(5):
                    start = time.perf_counter()
                    connection.exec_driver_sql(statement, parameters).fetchall()
                    times.append((time.perf_counter() - start) * 1000)
                lines.append(f"   executed in {statistics.median(times):.2f} ms (median of 5)")
            connection.rollback()
    return lines
