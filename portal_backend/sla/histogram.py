"""Mergeable latency histogram: fixed log-spaced buckets (DDSketch's mapping, fixed range).

Bucket ``i`` holds values in ``(MIN * g**(i-1), MIN * g**i]`` with ``g = (1+a)/(1-a)``;
a quantile is reported as the bucket's midpoint ``2 * MIN * g**i / (g + 1)``, which is
within relative error ``a = RELATIVE_ERROR`` (1 %) of the exact order statistic for every
value in the covered range [0.01 ms, ~2.8 h]. Values outside are clamped to the edge
buckets. Because the buckets are fixed, merging histograms is adding counts: any window's
percentiles come from summing its rollups, exactly as if the records had been folded
together.

Stored form (rollup rows): sparse, ``uint16`` bucket indexes then ``uint32`` counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
MIN_VALUE_MS = 0.01
MAX_VALUE_MS = 1e7
_LOG_GAMMA = math.log(GAMMA)
BUCKETS = int(math.ceil(math.log(MAX_VALUE_MS / MIN_VALUE_MS) / _LOG_GAMMA)) + 1


def bucket_indexes(values_ms: np.ndarray) -> np.ndarray:
    """Bucket index of each value (vectorised)."""
    clipped = np.clip(values_ms, MIN_VALUE_MS, MAX_VALUE_MS)
    idx = np.ceil(np.log(clipped / MIN_VALUE_MS) / _LOG_GAMMA - 1e-9).astype(np.int64)
    indexes: np.ndarray = np.clip(idx, 0, BUCKETS - 1)
    return indexes


def bucket_value(index: int | np.ndarray) -> float | np.ndarray:
    """The representative value of a bucket: relative error <= RELATIVE_ERROR."""
    return 2 * MIN_VALUE_MS * np.power(GAMMA, index) / (GAMMA + 1)


def dense(values_ms: np.ndarray) -> np.ndarray:
    """Dense counts (length BUCKETS, int64) of the given values."""
    if len(values_ms) == 0:
        return np.zeros(BUCKETS, dtype=np.int64)
    return np.bincount(bucket_indexes(values_ms), minlength=BUCKETS).astype(np.int64)


def encode(counts: np.ndarray) -> bytes:
    """Dense counts -> sparse bytes."""
    nz = np.flatnonzero(counts)
    if len(nz) == 0:
        return b""
    return nz.astype("<u2").tobytes() + counts[nz].astype("<u4").tobytes()


def decode(blob: bytes | None) -> np.ndarray:
    """Sparse bytes -> dense int64 counts."""
    out = np.zeros(BUCKETS, dtype=np.int64)
    if blob:
        n = len(blob) // 6
        idx = np.frombuffer(blob, dtype="<u2", count=n)
        out[idx] = np.frombuffer(blob, dtype="<u4", offset=2 * n, count=n)
    return out


def merge_encoded(blobs: Iterable[bytes | None]) -> np.ndarray:
    """Sum of many sparse histograms (one bincount over all of them)."""
    indexes: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for blob in blobs:
        if blob:
            n = len(blob) // 6
            indexes.append(np.frombuffer(blob, dtype="<u2", count=n))
            counts.append(np.frombuffer(blob, dtype="<u4", offset=2 * n, count=n))
    if not indexes:
        return np.zeros(BUCKETS, dtype=np.int64)
    summed = np.bincount(np.concatenate(indexes), weights=np.concatenate(counts), minlength=BUCKETS)
    return np.rint(summed).astype(np.int64)


def quantile(counts: np.ndarray, q: float) -> float | None:
    """Value at rank floor(q * (n - 1)) (the 'lower' order statistic), or None if empty."""
    total = int(counts.sum())
    if total == 0:
        return None
    rank = math.floor(q * (total - 1))
    index = int(np.searchsorted(np.cumsum(counts), rank, side="right"))
    return float(bucket_value(index))


def count_above(counts: np.ndarray, threshold_ms: float) -> int:
    """Requests slower than ``threshold_ms`` (to the bucket resolution)."""
    index = int(bucket_indexes(np.array([threshold_ms]))[0])
    return int(counts[index + 1 :].sum())


def spread(counts_by_upper: list[tuple[float, float, int]]) -> np.ndarray:
    """Dense counts from coarse buckets (lower_ms, upper_ms, count), e.g. Prometheus's.

    Counts are spread evenly over each coarse bucket's range, as Prometheus's own
    histogram_quantile interpolates; precision is then bounded by the coarse buckets.
    """
    out = np.zeros(BUCKETS, dtype=np.int64)
    for lower, upper, count in counts_by_upper:
        if count <= 0:
            continue
        if not math.isfinite(upper):
            out += dense(np.full(count, lower))
            continue
        points = min(count, 64)
        values = lower + (upper - lower) * (np.arange(points) + 0.5) / points
        share = np.full(points, count // points, dtype=np.int64)
        share[: count % points] += 1
        out += np.bincount(bucket_indexes(values), weights=share, minlength=BUCKETS).astype(
            np.int64
        )
    return out
