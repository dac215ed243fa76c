"""The lexical half of hybrid retrieval: BM25 as Qdrant sparse vectors, and the
question-term matching that re-ranks the candidates and gates refusal.

Each chunk gets a sparse vector of its terms with BM25's saturated term frequency
(k1, b, length-normalised); the collection's sparse vector carries Qdrant's IDF
modifier, so the server multiplies by each term's inverse document frequency over the
whole collection at query time and keeps it current as chunks come and go. A question's
vector holds 1.0 per term. The dot product is then BM25.

Terms are lower-cased words less common English words, reduced to their stem by the
Snowball English stemmer ("asking", "asked" and "asks" are all "ask"); identifiers
(pg_dump, deadlock_timeout, --read-only, max_wal_size) are kept whole *and* split into
their stemmed parts, so both "deadlock_timeout" and "deadlock timeout" match. Terms are
hashed to 32-bit indices (collisions are rare and only add a little noise).

ANALYZER names this recipe: chunk ids include it (ingestion/chunking.py), so a
collection indexed with another recipe is rewritten whole by the next ingestion run
instead of mixing two vocabularies.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from functools import lru_cache
from typing import Any

import snowballstemmer
from qdrant_client.http import models as qm

SPARSE_VECTOR = "lexical"
ANALYZER = "bm25-snowball-english-1"
K1 = 1.2
B = 0.75
# Average terms in a chunk, for BM25's length normalisation: a chunk of N characters
# holds about N / 6 terms (measured on prose and reference pages).
CHARS_PER_TERM = 6.0
# Consecutive non-empty lines that make one passage for passage_coverage: a sentence of
# hard-wrapped prose, or an option with its description in a reference page.
PASSAGE_LINES = 2

_WORD = re.compile(r"[a-z0-9]+(?:[_.\-][a-z0-9]+)*")
_PARTS = re.compile(r"[a-z0-9]+")
# Words that say nothing about what a passage is about. (Snowball's longer English list,
# with "only", "over", "same", "very"..., ranked worse on the measured corpora.)
_STOPWORD_TEXT = """a an and are as at be but by can do does for from had has have how i if in
into is it its may me my no not of on or our so such that the their then there these they
this to was we were what when where which while who why will with would you your"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_STEMMER = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def terms(text: str) -> list[str]:
    found: list[str] = []
    for word in _WORD.findall(text.lower()):
        if "_" in word or "." in word or "-" in word:  # an identifier: whole, then parts
            found.append(word)
            found.extend(stem(p) for p in _PARTS.findall(word) if p not in STOPWORDS)
        elif word not in STOPWORDS:
            # Most words: no second regex pass (the re-ranking reads 40 chunks a question).
            found.append(stem(word))
    return found


def coverage(asked: set[str], text: str) -> tuple[float, float]:
    """The share of the question's terms the text contains, and the share its best
    passage (PASSAGE_LINES consecutive non-empty lines) contains. (1.0, 1.0) for a
    question with no term left after stop words: nothing to miss."""
    if not asked:
        return 1.0, 1.0
    lines = [asked.intersection(terms(line)) for line in text.splitlines() if line.strip()]
    found: set[str] = set().union(*lines) if lines else set()
    best = max(
        (len(set().union(*lines[i : i + PASSAGE_LINES])) for i in range(len(lines))),
        default=0,
    )
    return len(found) / len(asked), best / len(asked)


def _index(term: str) -> int:
    return zlib.crc32(term.encode())


class LexicalEncoder:
    def __init__(self, chunk_size: int) -> None:
        self.average_terms = max(1.0, chunk_size / CHARS_PER_TERM)

    def document(self, text: str) -> qm.SparseVector:
        counts = Counter(terms(text))
        length = sum(counts.values()) or 1
        norm = K1 * (1 - B + B * length / self.average_terms)
        weights: dict[int, float] = {}
        for term, tf in counts.items():
            index = _index(term)
            weights[index] = weights.get(index, 0.0) + tf * (K1 + 1) / (tf + norm)
        return qm.SparseVector(indices=list(weights), values=list(weights.values()))

    def query(self, text: str) -> qm.SparseVector:
        indices = sorted({_index(term) for term in terms(text)})
        return qm.SparseVector(indices=indices, values=[1.0] * len(indices))


def idf(document_frequency: int, documents: int) -> float:
    """Qdrant's IDF modifier (BM25's): ln((N - n + 0.5) / (n + 0.5) + 1)."""
    return math.log((documents - document_frequency + 0.5) / (document_frequency + 0.5) + 1)


class LexicalIndex:
    """The collection's BM25 vectors as an in-memory inverted index, for Qdrant local mode.

    Local mode scores sparse vectors in Python, point by point, and counts the collection
    for IDF on every query (over 100 ms a question for 2,000 chunks on one core); this
    answers the same query with the same BM25 and IDF in about a millisecond. It is right
    only while nothing else writes the collection, which local mode guarantees: one
    process holds the folder (the API, or ingestion, never both).
    """

    def __init__(self, ids: list[Any], postings: dict[int, tuple[Any, Any]]) -> None:
        import numpy as np

        self.ids = ids
        self.documents = len(ids)
        self._np = np
        self.postings = postings

    @classmethod
    def load(cls, client: Any, collection: str, page: int = 1024) -> LexicalIndex:
        import numpy as np

        ids: list[Any] = []
        rows: dict[int, tuple[list[int], list[float]]] = {}
        offset = None
        while True:
            points, offset = client.scroll(
                collection, limit=page, offset=offset, with_payload=False,
                with_vectors=[SPARSE_VECTOR],
            )  # fmt: skip
            for point in points:
                vector = (point.vector or {}).get(SPARSE_VECTOR)
                position = len(ids)
                ids.append(point.id)
                if vector is None:
                    continue
                for index, value in zip(vector.indices, vector.values, strict=True):
                    docs, weights = rows.setdefault(index, ([], []))
                    docs.append(position)
                    weights.append(value)
            if offset is None:
                break
        postings = {
            index: (np.asarray(docs, dtype=np.int64), np.asarray(weights, dtype=np.float32))
            for index, (docs, weights) in rows.items()
        }
        return cls(ids, postings)

    def search(self, query: qm.SparseVector, limit: int) -> list[qm.ScoredPoint]:
        np = self._np
        scores = np.zeros(self.documents, dtype=np.float32)
        for index, value in zip(query.indices, query.values, strict=True):
            posting = self.postings.get(index)
            if posting is None:
                continue
            docs, weights = posting
            scores[docs] += weights * (value * idf(len(docs), self.documents))
        matched = np.flatnonzero(scores)
        if not len(matched):
            return []
        top = matched[np.argsort(-scores[matched], kind="stable")[:limit]]
        return [qm.ScoredPoint(id=self.ids[i], version=0, score=float(scores[i])) for i in top]
