"""Percentiles from merged rollups match numpy on the raw data within the stated error."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from portal_backend.db import session_scope
from portal_backend.sla import histogram, stats
from tests.sla.conftest import T0, push, records

QUANTILES = (0.5, 0.9, 0.95, 0.99)


def _exact(values: np.ndarray, q: float) -> float:
    # The histogram reports the order statistic at rank floor(q * (n - 1)).
    return float(np.quantile(values, q, method="lower"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_histogram_quantiles_within_relative_error(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.concatenate(
        [rng.lognormal(6, 1.2, 20_000), rng.uniform(0.05, 50, 2_000), rng.pareto(1.5, 3_000) * 900]
    )
    # Split into parts and merge the encoded parts, as rollups are merged.
    parts = np.array_split(rng.permutation(values), 37)
    merged = histogram.merge_encoded(histogram.encode(histogram.dense(p)) for p in parts)
    assert int(merged.sum()) == len(values)
    for q in QUANTILES:
        exact = _exact(values, q)
        estimate = histogram.quantile(merged, q)
        assert abs(estimate - exact) <= histogram.RELATIVE_ERROR * exact + 1e-12, (q, exact)


def test_window_percentiles_from_rollups_match_numpy(session_factory, svc) -> None:  # type: ignore[no-untyped-def]
    """Six hours of pushed traffic: windows crossing hour boundaries merge hour and minute
    rollups; every percentile is within 1 % of numpy on the raw records of the window."""
    rng = np.random.default_rng(11)
    start = T0 - timedelta(hours=6, minutes=17)
    all_records = []
    for chunk in range(19):
        chunk_start = start + timedelta(minutes=20 * chunk)
        recs = records(svc, chunk_start, 1200, 1500, error_ratio=0.03, rng=rng)
        all_records += recs
        push(session_factory, recs, T0)
    ts = np.array([datetime.fromisoformat(r["timestamp"]).timestamp() for r in all_records])
    lat = np.array([r["latency_ms"] for r in all_records])
    ok = np.array([r["outcome"] == "success" for r in all_records])
    end = int(T0.timestamp())
    with session_scope(session_factory) as session:
        for span in (300, 3600, 3 * 3600 + 600, 6 * 3600):
            window = stats.window_stats(session, svc, end - span, end)
            mask = (ts >= end - span) & (ts < end)
            assert window.requests == mask.sum()
            assert window.successes == ok[mask].sum()
            assert window.prompt_tokens == 200 * mask.sum()
            for q in QUANTILES:
                exact = _exact(lat[mask], q)
                assert abs(window.latency_quantile(q) - exact) <= 0.01 * exact + 1e-9, (span, q)
            ttft_exact = _exact(lat[mask] / 4, 0.95)
            assert abs(window.ttft_quantile(0.95) - ttft_exact) <= 0.01 * ttft_exact + 1e-9
