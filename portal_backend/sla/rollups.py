"""Per-minute and per-hour usage rollups: fold records into deltas, upsert them in bulk.

A delta is what one batch (or one collector run) adds to one (service, resolution,
bucket, source) row. Rows are merged read-modify-write inside the caller's transaction:
blank rows are inserted first (ON CONFLICT DO NOTHING), which takes the write lock on
SQLite and creates every key on PostgreSQL, then the rows are read FOR UPDATE, merged
and written back with one executemany UPDATE. Concurrent writers to the same key thus
serialise on the row lock instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import bindparam, select, tuple_, update
from sqlalchemy.orm import Session

from portal_backend.sla import histogram
from portal_backend.sla.tables import UsageRollup

MINUTE = 60
HOUR = 3600
T = UsageRollup.__table__
Key = tuple[str, str, int, str]  # service_ref, resolution, bucket_ts, source


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
    """Adds the hour rollups implied by minute deltas (queries over days read hours)."""
    out = dict(deltas)
    for (service, resolution, bucket, source), delta in deltas.items():
        if resolution != "1m":
            continue
        hour_key = (service, "1h", bucket - bucket % HOUR, source)
        hour = out.get(hour_key)
        if hour is None:
            hour = out[hour_key] = RollupDelta()
        hour.add(delta)
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


def apply_deltas(session: Session, deltas: dict[Key, RollupDelta]) -> None:
    """Merges deltas into the rollup rows (see the module docstring for the locking)."""
    if not deltas:
        return
    keys = sorted(deltas)  # a fixed order: concurrent writers lock rows the same way
    blank = {c: 0 for c in _COUNTERS} | {"latency_hist": b"", "ttft_hist": b""}
    insert_ignore(
        session,
        T,
        [
            {"service_ref": s, "resolution": r, "bucket_ts": b, "source": src, **blank}
            for s, r, b, src in keys
        ],
    )
    key_cols = (T.c.service_ref, T.c.resolution, T.c.bucket_ts, T.c.source)
    query = select(T).where(tuple_(*key_cols).in_(keys))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    updates = []
    for row in session.execute(query).mappings():
        key = (row["service_ref"], row["resolution"], row["bucket_ts"], row["source"])
        delta = deltas[key]
        values = {f"n_{c}": row[c] + getattr(delta, c) for c in _COUNTERS}
        values["n_latency_hist"] = histogram.encode(
            histogram.decode(row["latency_hist"]) + delta.latency
        )
        values["n_ttft_hist"] = histogram.encode(histogram.decode(row["ttft_hist"]) + delta.ttft)
        values.update(k_service=key[0], k_resolution=key[1], k_bucket=key[2], k_source=key[3])
        updates.append(values)
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
    session.connection().execute(statement, updates)
