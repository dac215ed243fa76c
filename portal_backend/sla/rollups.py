"""Per-minute and per-hour usage rollups: fold records into deltas, upsert them in bulk.

A delta is what one batch (or one collector run) adds to one (service, resolution,
bucket, source) row. Rows are merged read-modify-write inside the caller's transaction:
existing rows are read FOR UPDATE (PostgreSQL; SQLite has one writer at a time, and the
caller's first statement already took its write lock), merged in memory and written
back with one executemany UPDATE; missing rows are inserted whole. Concurrent writers to
the same key serialise on the row lock instead of losing counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import psycopg
from sqlalchemy import RowMapping, Table, bindparam, false, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from portal_backend.sla import histogram
from portal_backend.sla.tables import UsageRollup

MINUTE = 60
HOUR = 3600
DAY = 86400
T = UsageRollup.__table__
Key = tuple[str, str, int, str]  # service_ref, resolution ("1m"|"1h"|"1d"), bucket, source


@dataclass
class RollupDelta:
    requests: int = 0
    successes: int = 0
    errors: int = 0
    timeouts: int = 0
    refused: int = 0
    latency_sum_ms: float = 0.0
    latency: np.ndarray = field(default_factory=lambda: np.zeros(histogram.BUCKETS, np.int64))
    ttft: np.ndarray = field(default_factory=lambda: np.zeros(histogram.BUCKETS, np.int64))
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, other: RollupDelta) -> None:
        self.requests += other.requests
        self.successes += other.successes
        self.errors += other.errors
        self.timeouts += other.timeouts
        self.refused += other.refused
        self.latency_sum_ms += other.latency_sum_ms
        self.latency = self.latency + other.latency
        self.ttft = self.ttft + other.ttft
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens


OUTCOMES = ("success", "error", "timeout", "refused")


def fold(
    service_codes: np.ndarray,
    services: list[str],
    ts: np.ndarray,
    latency_ms: np.ndarray,
    ttft_ms: np.ndarray,
    prompt_tokens: np.ndarray,
    completion_tokens: np.ndarray,
    outcome_codes: np.ndarray,
    source: str,
) -> dict[Key, RollupDelta]:
    """Fold columns of records into minute and hour deltas (vectorised, one pass each).

    ``ttft_ms`` holds NaN where a record has no time-to-first-token; outcome codes index
    OUTCOMES.
    """
    minutes = (ts // MINUTE).astype(np.int64) * MINUTE
    keys = service_codes.astype(np.int64) * (1 << 40) + minutes
    uniq, inverse = np.unique(keys, return_inverse=True)
    groups = len(uniq)
    per_outcome = np.bincount(inverse * 4 + outcome_codes, minlength=groups * 4).reshape(groups, 4)
    lat_sum = np.bincount(inverse, weights=latency_ms, minlength=groups)
    pt = np.bincount(inverse, weights=prompt_tokens, minlength=groups)
    ct = np.bincount(inverse, weights=completion_tokens, minlength=groups)
    buckets = histogram.BUCKETS
    lat_hist = np.bincount(
        inverse * buckets + histogram.bucket_indexes(latency_ms), minlength=groups * buckets
    ).reshape(groups, buckets)
    has_ttft = ~np.isnan(ttft_ms)
    ttft_hist = np.bincount(
        inverse[has_ttft] * buckets + histogram.bucket_indexes(ttft_ms[has_ttft]),
        minlength=groups * buckets,
    ).reshape(groups, buckets)
    deltas: dict[Key, RollupDelta] = {}
    for g, key in enumerate(uniq.tolist()):
        service = services[key >> 40]
        minute = key & ((1 << 40) - 1)
        counts = per_outcome[g]
        delta = RollupDelta(
            requests=int(counts.sum()),
            successes=int(counts[0]),
            errors=int(counts[1]),
            timeouts=int(counts[2]),
            refused=int(counts[3]),
            latency_sum_ms=float(lat_sum[g]),
            latency=lat_hist[g].astype(np.int64),
            ttft=ttft_hist[g].astype(np.int64),
            prompt_tokens=int(round(pt[g])),
            completion_tokens=int(round(ct[g])),
        )
        deltas[(service, "1m", minute, source)] = delta
    return with_hours(deltas)


def with_hours(deltas: dict[Key, RollupDelta]) -> dict[Key, RollupDelta]:
    """Adds the hour and day rollups implied by minute deltas.

    Reads cover a window with whole days, then whole hours, then minutes at the edges,
    so 30 days cost about 30 + 2 x 23 + 2 x 59 rows instead of 43,200.
    """
    out = dict(deltas)
    for (service, resolution, bucket, source), delta in deltas.items():
        if resolution != "1m":
            continue
        for coarse, size in (("1h", HOUR), ("1d", DAY)):
            key = (service, coarse, bucket - bucket % size, source)
            row = out.get(key)
            if row is None:
                row = out[key] = RollupDelta()
            row.add(delta)
    return out


def _insert(session: Session) -> Callable[[Table], postgresql.Insert | sqlite.Insert]:
    """The dialect's INSERT, which has ON CONFLICT (both spell it the same)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> int:
    """INSERT ... ON CONFLICT DO NOTHING; returns how many rows were new."""
    if not rows:
        return 0
    statement = _insert(session)(table).on_conflict_do_nothing()
    if len(rows) == 1:
        # RETURNING tells reliably whether the row was new (rowcount is -1 on psycopg).
        first_key = next(iter(table.primary_key.columns))
        result = session.connection().execute(statement.returning(first_key), rows[0])
        return len(result.all())
    session.connection().execute(statement, rows)
    return len(rows)


# The counter columns of a rollup row (summed when rows merge); the histograms aside.
COUNTERS = (
    "requests",
    "successes",
    "errors",
    "timeouts",
    "refused",
    "latency_sum_ms",
    "prompt_tokens",
    "completion_tokens",
)


def _row_values(
    key: Key, delta: RollupDelta, row: RowMapping | dict[str, Any] | None
) -> dict[str, Any]:
    values = {c: getattr(delta, c) + (row[c] if row else 0) for c in COUNTERS}
    latency, ttft = delta.latency, delta.ttft
    if row:
        latency = latency + histogram.decode(row["latency_hist"])
        ttft = ttft + histogram.decode(row["ttft_hist"])
    values["latency_hist"] = histogram.encode(latency)
    values["ttft_hist"] = histogram.encode(ttft)
    return values


def apply_deltas(session: Session, deltas: dict[Key, RollupDelta]) -> None:
    """Merges deltas into the rollup rows (see the module docstring for the locking).

    Usually three round trips: read the existing rows FOR UPDATE, insert the missing
    ones complete (ON CONFLICT DO NOTHING RETURNING), update the rest in one
    executemany. A key inserted by a concurrent writer between the read and the
    insert is read again (now locked) and merged.
    """
    if not deltas:
        return
    connection = session.connection()
    is_postgres = connection.dialect.name == "postgresql"
    key_cols = (T.c.service_ref, T.c.resolution, T.c.bucket_ts, T.c.source)
    if not is_postgres:
        # pysqlite begins the transaction at the first write: take SQLite's write lock
        # now, so the rows read next cannot change before they are written back.
        connection.execute(update(T).where(false()).values(requests=T.c.requests))
    pending = sorted(deltas)  # a fixed order: concurrent writers lock rows the same way
    updates: list[dict[str, Any]] = []
    for _attempt in range(5):
        # ORDER BY puts PostgreSQL's row locks in key order (LockRows sits above the
        # sort): writers sharing hour/day rows queue up instead of deadlocking.
        query = select(T).where(tuple_(*key_cols).in_(pending)).order_by(*key_cols)
        if is_postgres:
            query = query.with_for_update()
        existing = {
            (r["service_ref"], r["resolution"], r["bucket_ts"], r["source"]): r
            for r in connection.execute(query).mappings()
        }
        for key, row in existing.items():
            values = _row_values(key, deltas[key], row)
            updates.append(
                {f"n_{c}": v for c, v in values.items()}
                | dict(zip(("k_service", "k_resolution", "k_bucket", "k_source"), key, strict=True))
            )
        missing = [k for k in pending if k not in existing]
        if not missing:
            break
        rows = [
            dict(zip(("service_ref", "resolution", "bucket_ts", "source"), key, strict=True))
            | _row_values(key, deltas[key], None)
            for key in missing
        ]
        statement = _insert(session)(T).on_conflict_do_nothing().returning(*key_cols)
        inserted = {tuple(r) for r in connection.execute(statement, rows).all()}
        pending = [k for k in missing if k not in inserted]
        if not pending:
            break
    else:
        raise RuntimeError("rollup rows kept changing under a concurrent writer")
    if not updates:
        return
    write = (
        update(T)
        .where(
            T.c.service_ref == bindparam("k_service"),
            T.c.resolution == bindparam("k_resolution"),
            T.c.bucket_ts == bindparam("k_bucket"),
            T.c.source == bindparam("k_source"),
        )
        .values({c: bindparam(f"n_{c}") for c in (*COUNTERS, "latency_hist", "ttft_hist")})
    )
    connection.execute(write, updates)


# -- PostgreSQL hot path: batch-id claim and rollup merge in two statements --------------

_KEY_COLS = ("service_ref", "resolution", "bucket_ts", "source")
_VALUE_COLS = (*COUNTERS, "latency_hist", "ttft_hist")
_ALL_COLS = ", ".join((*_KEY_COLS, *_VALUE_COLS))
_TYPES = dict.fromkeys((*_KEY_COLS, *_VALUE_COLS), "bigint") | {
    "service_ref": "text",
    "resolution": "text",
    "source": "text",
    "latency_sum_ms": "float8",
    "latency_hist": "bytea",
    "ttft_hist": "bytea",
}
_KEYS_MATCH = " AND ".join(f"r.{c} = k.{c}" for c in _KEY_COLS)
# Keys and rows travel as one array per column (unnest), so the statement text is the
# same for every batch: psycopg prepares it once and PostgreSQL reuses the plan. (With
# one placeholder per key the text varied with the key count, and the generic plans
# PostgreSQL picked for the IN-list cost ~4x more server CPU than the whole old path.)
#
# Statement 1: claim the batch id and, only when the claim succeeded, read the rows this
# batch touches FOR UPDATE in key order (the lock order apply_deltas uses, so writers
# sharing hour/day rows queue instead of deadlocking). The outer join returns one row
# with claimed = 0 for a duplicate batch, and claimed = 1 plus NULLs when no rollup row
# exists yet.
_CLAIM_AND_LOCK = f"""
WITH claim AS (
    INSERT INTO {{claim_table}} ({{claim_cols}}) VALUES ({{claim_values}})
    ON CONFLICT DO NOTHING RETURNING 1
), locked AS (
    SELECT {", ".join(f"r.{c}" for c in (*_KEY_COLS, *_VALUE_COLS))}
    FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[])
         AS k ({", ".join(_KEY_COLS)})
    JOIN sla_usage_rollups AS r ON {_KEYS_MATCH}
    WHERE EXISTS (SELECT 1 FROM claim)
    ORDER BY r.service_ref, r.resolution, r.bucket_ts, r.source
    FOR UPDATE OF r
)
SELECT (SELECT count(*) FROM claim), locked.*
FROM (VALUES (1)) AS one (x) LEFT JOIN locked ON true
"""
# Sent before statement 1 (same round trip) when the caller accepts an asynchronous
# commit; LOCAL: only this transaction, the pooled connection keeps the server default.
_ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"
# Statement 2: rows read above are locked, so they are overwritten with their merged
# values; missing rows are inserted whole. A missing row that a concurrent writer
# inserted in between is not in RETURNING and is merged by apply_deltas (rare).
_WRITE = f"""
WITH k AS (
    SELECT * FROM unnest({", ".join(f"%s::{_TYPES[c]}[]" for c in (*_KEY_COLS, *_VALUE_COLS))},
                         %s::bool[])
    AS k ({_ALL_COLS}, is_new)
), upd AS (
    UPDATE sla_usage_rollups AS r SET {", ".join(f"{c} = k.{c}" for c in _VALUE_COLS)}
    FROM k
    WHERE NOT k.is_new AND {_KEYS_MATCH}
    RETURNING 1
)
INSERT INTO sla_usage_rollups ({_ALL_COLS})
SELECT {_ALL_COLS} FROM k WHERE k.is_new
ORDER BY service_ref, resolution, bucket_ts, source
ON CONFLICT DO NOTHING
RETURNING service_ref, resolution, bucket_ts, source
"""


def claim_and_apply(
    session: Session,
    claim_table: Table,
    claim_row: dict[str, Any],
    deltas: dict[Key, RollupDelta],
    *,
    synchronous_commit: bool = True,
) -> bool:
    """Claims ``claim_row`` (a batch id, INSERT ... ON CONFLICT DO NOTHING) and merges the
    deltas in the same transaction; False (nothing written) when the id was claimed before.

    PostgreSQL: two statements on the driver's cursor, the first pipelined with the
    transaction's BEGIN (two round trips before the commit instead of three); with
    ``synchronous_commit`` False the transaction's commit does not wait for its WAL to
    reach the disk (see Settings.sla_ingest_synchronous_commit). Other databases:
    insert_ignore then apply_deltas.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        if insert_ignore(session, claim_table, [claim_row]) == 0:
            return False
        apply_deltas(session, deltas)
        return True
    keys = sorted(deltas)
    claim_cols = list(claim_row)
    sql = _CLAIM_AND_LOCK.format(
        claim_table=claim_table.name,
        claim_cols=", ".join(claim_cols),
        claim_values=", ".join(["%s"] * len(claim_cols)),
    )
    key_columns = [list(column) for column in zip(*keys, strict=True)]
    params = (*(claim_row[c] for c in claim_cols), *key_columns)
    # The psycopg connection under SQLAlchemy's (typed Optional: a checked-out one has it),
    # in SQLAlchemy's transaction.
    driver = cast("psycopg.Connection[Any]", connection.connection.driver_connection)
    try:
        with driver.cursor() as cursor:
            with driver.pipeline():
                if not synchronous_commit:
                    cursor.execute(_ASYNC_COMMIT, prepare=False)
                cursor.execute(sql, params)
                result = cursor.fetchall()
            if result[0][0] == 0:
                return False
            names = (*_KEY_COLS, *_VALUE_COLS)
            existing = {
                tuple(row[1:5]): dict(zip(names, row[1:], strict=True))
                for row in result
                if row[1] is not None
            }
            columns: dict[str, list[Any]] = {c: [] for c in names}
            is_new = []
            for key in keys:
                row = existing.get(key)
                merged = _row_values(key, deltas[key], row)
                for c, part in zip(_KEY_COLS, key, strict=True):
                    columns[c].append(part)
                for c in _VALUE_COLS:
                    columns[c].append(merged[c])
                is_new.append(row is None)
            sql = _WRITE
            params = (*columns.values(), is_new)
            cursor.execute(sql, params)
            inserted = {tuple(r) for r in cursor.fetchall()}
    except psycopg.Error as error:
        # As SQLAlchemy would have handled it: callers retry on OperationalError (a
        # deadlock victim), the session rolls the whole transaction back, and a
        # connection the server dropped is not handed out by the pool again.
        if driver.closed:
            connection.invalidate()
        raise DBAPIError.instance(
            sql, params, error, psycopg.Error, connection_invalidated=driver.closed
        ) from error
    lost = [k for k in keys if k not in existing and k not in inserted]
    if lost:
        apply_deltas(session, {k: deltas[k] for k in lost})
    return True
