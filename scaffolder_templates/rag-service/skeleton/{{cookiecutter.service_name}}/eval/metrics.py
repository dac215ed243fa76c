"""Retrieval and refusal metrics over ranked results, and threshold calibration."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_WORDS = re.compile(r"[a-z0-9_%]+")


def words(text: str) -> str:
    """Words only, lower case: Markdown markup, escapes and line breaks never decide
    whether a chunk holds a passage."""
    return " ".join(_WORDS.findall(text.replace("\\", "").lower()))


def source_matches(source: str, expected: Sequence[str]) -> bool:
    """A golden source names a document by its path or by its path's ending."""
    return any(source == e or source.endswith("/" + e.lstrip("/")) for e in expected)


def _dedupe(sources: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for source in sources:
        if source not in seen:
            seen.append(source)
    return seen


def first_hit_rank(ranked_sources: Sequence[str], expected: Sequence[str]) -> int | None:
    """1-based rank of the first retrieved document that is expected, if any."""
    for rank, source in enumerate(_dedupe(ranked_sources), start=1):
        if source_matches(source, expected):
            return rank
    return None


def first_passage_rank(
    ranked: Sequence[tuple[str, str]], expected: Sequence[str], quote: str
) -> int | None:
    """1-based rank of the first retrieved chunk of an expected document that holds the
    quoted passage, if any."""
    wanted = words(quote)
    if not wanted:
        return None
    for rank, (source, text) in enumerate(ranked, start=1):
        if source_matches(source, expected) and wanted in words(text):
            return rank
    return None


def hit_at_k(ranks: Sequence[int | None], k: int) -> float:
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks) if ranks else 0.0


def mean_reciprocal_rank(ranks: Sequence[int | None]) -> float:
    return sum(1 / r for r in ranks if r is not None) / len(ranks) if ranks else 0.0


@dataclass(frozen=True)
class RefusalCounts:
    refused_unanswerable: int
    unanswerable: int
    refused_answerable: int
    answerable: int

    @property
    def precision(self) -> float | None:
        """Of the refusals, the share that were right (the question had no answer)."""
        refused = self.refused_unanswerable + self.refused_answerable
        return self.refused_unanswerable / refused if refused else None

    @property
    def recall(self) -> float | None:
        """Of the unanswerable questions, the share refused."""
        return self.refused_unanswerable / self.unanswerable if self.unanswerable else None


def refusal_counts(outcomes: Sequence[tuple[bool, bool]]) -> RefusalCounts:
    """From (answerable, refused) pairs."""
    return RefusalCounts(
        refused_unanswerable=sum(1 for a, r in outcomes if not a and r),
        unanswerable=sum(1 for a, _ in outcomes if not a),
        refused_answerable=sum(1 for a, r in outcomes if a and r),
        answerable=sum(1 for a, _ in outcomes if a),
    )


# Answerable questions a calibrated threshold may refuse: 3 % (one in 35), the rest of the
# unanswerable ones are accepted as answered rather than refusing good questions.
MAX_WRONG_REFUSALS = 0.03


def calibrate_threshold(
    best_scores: Sequence[tuple[bool, float | None]], max_wrong: float = MAX_WRONG_REFUSALS
) -> float:
    """The refusal threshold that refuses the most unanswerable questions while refusing
    at most `max_wrong` of the answerable ones (rounded down: none under 34 answerable
    questions), ties broken by fewer answerable refused, then by the widest margin; it
    sits halfway between the two scores it separates.

    `best_scores`: (answerable, best relevance or None when nothing was retrieved).
    """
    answerable = [s if s is not None else float("-inf") for a, s in best_scores if a]
    unanswerable = [s if s is not None else float("-inf") for a, s in best_scores if not a]
    if not answerable or not unanswerable:
        raise ValueError(
            "calibration needs answerable and unanswerable questions in the golden set "
            '(unanswerable: "expected_sources": [])'
        )
    allowed = int(max_wrong * len(answerable))
    finite = sorted({s for s in answerable + unanswerable if s != float("-inf")})
    candidates = [finite[0] - 0.01] + [
        (a + b) / 2 for a, b in zip(finite, finite[1:], strict=False)
    ]
    candidates.append(finite[-1] + 0.01)

    def quality(threshold: float) -> tuple[int, int, float]:
        refused_u = sum(1 for s in unanswerable if s < threshold)
        refused_a = sum(1 for s in answerable if s < threshold)
        below = [s for s in finite if s < threshold]
        above = [s for s in finite if s >= threshold]
        margin = (min(above) if above else threshold) - (max(below) if below else threshold)
        return refused_u, -refused_a, margin

    allowed_candidates = [t for t in candidates if sum(1 for s in answerable if s < t) <= allowed]
    return round(max(allowed_candidates, key=quality), 4)
