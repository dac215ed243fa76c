"""Window statistics from rollups: full hours from hour rows, partial hours from minutes.

One query fetches every row a set of windows needs; each window is then aggregated in
memory (counters summed, histograms merged with one bincount). Percentiles carry the
histogram's relative error (histogram.RELATIVE_ERROR).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from portal_backend.sla import histogram
from portal_backend.sla.rollups import COUNTERS, DAY, HOUR, MINUTE, T

Range = tuple[str, int, int]


def plan(start: int, end: int) -> list[Range]:
    """Which rollup rows cover [start, end) (minute-aligned): whole days from day rows,
    whole hours at the day edges from hour rows, minutes at the hour edges."""
    start -= start % MINUTE
    end -= end % MINUTE
    if start >= end:
        return []
    d0 = -(-start // DAY) * DAY
    d1 = end // DAY * DAY
    if d0 >= d1:
        return _plan_hours(start, end)
    return [("1d", d0, d1), *_plan_hours(start, d0), *_plan_hours(d1, end)]


def _plan_hours(start: int, end: int) -> list[Range]:
    if start >= end:
        return []
    h0 = -(-start // HOUR) * HOUR
    h1 = end // HOUR * HOUR
    if h0 >= h1:
        return [("1m", start, end)]
    out: list[Range] = [("1h", h0, h1)]
    if start < h0:
        out.append(("1m", start, h0))
    if h1 < end:
        out.append(("1m", h1, end))
    return out


@dataclass
class WindowStats:
    start: int
    end: int
    requests: int
    successes: int
    errors: int
    timeouts: int
    refused: int
    latency_sum_ms: float
    prompt_tokens: int
    completion_tokens: int
    latency: np.ndarray
    ttft: np.ndarray

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.requests if self.requests else None

    def latency_quantile(self, q: float) -> float | None:
        return histogram.quantile(self.latency, q)

    def ttft_quantile(self, q: float) -> float | None:
        return histogram.quantile(self.ttft, q)

    def slower_than(self, threshold_ms: float) -> int:
        return histogram.count_above(self.latency, threshold_ms)


class RollupRows:
    """Rollup rows of one service, fetched once, aggregated per window."""

    def __init__(self, rows: Sequence[Sequence[Any]]) -> None:
        # Columns at once: rows are (resolution, bucket_ts, *COUNTERS, latency, ttft).
        # Indexing rows is C-fast; unpacking SQLAlchemy Rows (zip(*rows)) is not.
        columns = [[r[i] for r in rows] for i in range(len(COUNTERS) + 4)]
        self.resolution = np.array(columns[0], dtype=object)
        self.ts = np.array(columns[1], dtype=np.int64)
        self.counters = (
            np.array(columns[2 : 2 + len(COUNTERS)], dtype=np.float64).T
            if rows
            else np.zeros((0, len(COUNTERS)))
        )
        self.latency = columns[-2]
        self.ttft = columns[-1]

    def window(self, start: int, end: int) -> WindowStats:
        mask = np.zeros(len(self.ts), dtype=bool)
        for resolution, lo, hi in plan(start, end):
            mask |= (self.resolution == resolution) & (self.ts >= lo) & (self.ts < hi)
        sums = self.counters[mask].sum(axis=0) if mask.any() else np.zeros(len(COUNTERS))
        picked = np.flatnonzero(mask).tolist()
        values = dict(zip(COUNTERS, sums.tolist(), strict=True))
        return WindowStats(
            start=start,
            end=end,
            requests=int(values["requests"]),
            successes=int(values["successes"]),
            errors=int(values["errors"]),
            timeouts=int(values["timeouts"]),
            refused=int(values["refused"]),
            latency_sum_ms=values["latency_sum_ms"],
            prompt_tokens=int(values["prompt_tokens"]),
            completion_tokens=int(values["completion_tokens"]),
            latency=histogram.merge_encoded(self.latency[i] for i in picked),
            ttft=histogram.merge_encoded(self.ttft[i] for i in picked),
        )


def fetch(session: Session, service_ref: str, windows: list[tuple[int, int]]) -> RollupRows:
    ranges = {r for start, end in windows for r in plan(start, end)}
    if not ranges:
        return RollupRows([])
    query = select(
        T.c.resolution,
        T.c.bucket_ts,
        *(T.c[c] for c in COUNTERS),
        T.c.latency_hist,
        T.c.ttft_hist,
    ).where(
        T.c.service_ref == service_ref,
        or_(
            *(
                and_(T.c.resolution == res, T.c.bucket_ts >= lo, T.c.bucket_ts < hi)
                for res, lo, hi in sorted(ranges)
            )
        ),
    )
    return RollupRows(session.execute(query).all())


def window_stats(session: Session, service_ref: str, start: int, end: int) -> WindowStats:
    return fetch(session, service_ref, [(start, end)]).window(start, end)


def series(
    session: Session, service_ref: str, start: int, end: int, step: int
) -> list[dict[str, Any]]:
    """Chart points: requests, success rate, p95 latency and tokens per step."""
    resolution, unit = (
        ("1m", MINUTE) if step < HOUR else ("1h", HOUR) if step < DAY else ("1d", DAY)
    )
    first = start - start % unit
    rows = session.execute(
        select(
            T.c.bucket_ts,
            T.c.requests,
            T.c.successes,
            T.c.prompt_tokens,
            T.c.completion_tokens,
            T.c.latency_hist,
        ).where(
            T.c.service_ref == service_ref,
            T.c.resolution == resolution,
            T.c.bucket_ts >= first,
            T.c.bucket_ts < end,
        )
    ).all()
    base = start - start % step
    points = max(1, -(-(end - base) // step))
    requests = np.zeros(points)
    successes = np.zeros(points)
    tokens = np.zeros(points)
    group_idx: list[np.ndarray] = []
    group_cnt: list[np.ndarray] = []
    for ts, req, ok, pt, ct, blob in rows:
        g = (ts - base) // step
        if not 0 <= g < points:
            continue
        requests[g] += req
        successes[g] += ok
        tokens[g] += pt + ct
        if blob:
            n = len(blob) // 6
            group_idx.append(np.frombuffer(blob, "<u2", n).astype(np.int64) + g * histogram.BUCKETS)
            group_cnt.append(np.frombuffer(blob, "<u4", n, 2 * n))
    hist = (
        np.bincount(
            np.concatenate(group_idx),
            weights=np.concatenate(group_cnt),
            minlength=points * histogram.BUCKETS,
        ).reshape(points, histogram.BUCKETS)
        if group_idx
        else np.zeros((points, histogram.BUCKETS))
    )
    out = []
    for g in range(points):
        out.append(
            {
                "t": base + g * step,
                "requests": int(requests[g]),
                "successRate": successes[g] / requests[g] if requests[g] else None,
                "p95LatencyMs": histogram.quantile(hist[g], 0.95),
                "tokens": int(tokens[g]),
            }
        )
    return out
