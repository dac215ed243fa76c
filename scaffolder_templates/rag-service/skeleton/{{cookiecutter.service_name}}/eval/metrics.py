"""Retrieval metrics over ranked source lists."""

from __future__ import annotations

from collections.abc import Sequence


def _dedupe(sources: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for source in sources:
        if source not in seen:
            seen.append(source)
    return seen


def first_hit_rank(ranked_sources: Sequence[str], expected: Sequence[str]) -> int | None:
    """1-based rank of the first retrieved document that is expected, if any."""
    for rank, source in enumerate(_dedupe(ranked_sources), start=1):
        if any(source == e or source.endswith("/" + e) for e in expected):
            return rank
    return None


def hit_at_k(ranks: Sequence[int | None], k: int) -> float:
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float:
    return sum(1 / r for r in ranks if r is not None) / len(ranks) if ranks else 0.0
