"""Per-minute and per-hour usage rollups: fold records into deltas, upsert them in bulk.

A delta is what one batch (or one collector run) adds to one (service, resolution,
bucket, source) row. Rows are merged read-modify-write inside the caller's transaction:
existing rows are read FOR UPDATE (PostgreSQL; SQLite has one writer at a time, and the
caller's first statement already took its write lock), merged in memory and written
back with one executemany UPDATE; missing rows are inserted whole. Concurrent writers to
the same key serialise on the row lock instead of losing counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import bindparam, false, select, tuple_, update
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


def _insert(session: Session):  # type: ignore[no-untyped-def]
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def insert_ignore(session: Session, table, rows: list[dict]) -> int:  # type: ignore[no-untyped-def]
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


_COUNTERS = (
    "requests",
    "successes",
    "errors",
    "timeouts",
    "refused",
    "latency_sum_ms",
    "prompt_tokens",
    "completion_tokens",
)


def _row_values(key: Key, delta: RollupDelta, row: dict | None) -> dict:
    values = {c: getattr(delta, c) + (row[c] if row else 0) for c in _COUNTERS}
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
    updates: list[dict] = []
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
    statement = (
        update(T)
        .where(
            T.c.service_ref == bindparam("k_service"),
            T.c.resolution == bindparam("k_resolution"),
            T.c.bucket_ts == bindparam("k_bucket"),
            T.c.source == bindparam("k_source"),
        )
        .values({c: bindparam(f"n_{c}") for c in (*_COUNTERS, "latency_hist", "ttft_hist")})
    )
    connection.execute(statement, updates)
