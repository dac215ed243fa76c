"""The RAG chain: retrieve from Qdrant, keep relevant chunks, answer grounded (LCEL).

Retrieval (RETRIEVAL_RANKING=hybrid) takes the best RETRIEVAL_CANDIDATES chunks of the
embedding search and of a BM25 search (app/lexical.py) and re-ranks their union by

    cosine similarity + 0.25 * term coverage + 0.5 * passage coverage

where term coverage is the share of the question's terms the chunk holds and passage
coverage the share its best two consecutive lines hold: a chunk that states the answer
in one place (an option and its description, one sentence) beats one that mentions the
same words far apart, which is what the embedding of a long chunk cannot see. On a
Qdrant server that is one query (two prefetches, re-scored by the embedding); in local
mode BM25 runs from memory. RETRIEVAL_RANKING=dense is the embedding search alone.
(Measured in rag-portal's benchmarks/rag_quality.py, with the choices it left out.)

A chunk's relevance is the mean of its cosine similarity and its term coverage: the
embedding says "same topic", the terms say "about this very thing", and questions the
documents cannot answer usually fail the second (cosine alone cannot tell them apart).
When no chunk of the top k reaches the threshold, the answer is "I don't know" without
an LLM call; otherwise the top k are the context (dropping the weaker ones as well lost
passages that answer, measured).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable
from langchain_qdrant import QdrantVectorStore
from qdrant_client.http import models as qm

from app.lexical import SPARSE_VECTOR, LexicalEncoder, LexicalIndex, coverage, terms
from app.settings import Settings
from app.vectorstore import CONTENT_KEY, METADATA_KEY, has_lexical

SYSTEM_PROMPT = """You answer questions for {service} using ONLY the numbered context passages.
Rules:
- Every statement must be supported by the context; cite passages like [1] or [2].
- If the context does not contain the answer, say exactly:
  "I don't know based on the available documents."
- Do not use outside knowledge. Be concise."""

NO_CONTEXT_ANSWER = "I don't know based on the available documents."
SNIPPET_CHARS = 300
# Hybrid re-ranking: cosine + these weights times term coverage and passage coverage.
COVERAGE_WEIGHT = 0.25
PASSAGE_WEIGHT = 0.5


@dataclass(frozen=True)
class RetrievedChunk:
    document: Document
    # Relevance: the mean of `similarity` and `coverage` (what the threshold compares).
    score: float
    # Cosine similarity of question and chunk embeddings.
    similarity: float = 0.0
    # Share of the question's terms (app/lexical.py) found in the chunk.
    coverage: float = 0.0

    def citation(self) -> dict[str, Any]:
        meta = self.document.metadata
        section_or_page: str | None = None
        if meta.get("page") is not None:
            section_or_page = f"page {meta['page']}"
        elif meta.get("section"):
            section_or_page = str(meta["section"])
        text = " ".join(self.document.page_content.split())
        return {
            "source": meta.get("source", ""),
            "title": meta.get("title", ""),
            "section_or_page": section_or_page,
            "score": round(float(self.score), 4),
            "snippet": text[:SNIPPET_CHARS],
        }

    def passage(self) -> dict[str, Any]:
        """The citation with the chunk's whole text instead of a snippet."""
        cited = self.citation()
        del cited["snippet"]
        return {
            **cited,
            "similarity": round(float(self.similarity), 4),
            "coverage": round(float(self.coverage), 4),
            "text": self.document.page_content,
        }


@dataclass
class Answer:
    text: str
    chunks: list[RetrievedChunk]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    called_llm: bool = False
    usage_reported: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Retrieval:
    """One question's ranked top k, and what the threshold makes of them."""

    ranked: list[RetrievedChunk]
    threshold: float

    @property
    def kept(self) -> list[RetrievedChunk]:
        """The context: the top k when the best of them reaches the threshold, else none
        (a refusal)."""
        best = self.best_score
        return list(self.ranked) if best is not None and best >= self.threshold else []

    @property
    def best_score(self) -> float | None:
        return max((c.score for c in self.ranked), default=None)


def format_context(chunks: Sequence[RetrievedChunk]) -> str:
    parts = []
    for i, chunk in enumerate(chunks, start=1):
        meta = chunk.document.metadata
        where = meta.get("title") or meta.get("source", "")
        parts.append(f"[{i}] ({where})\n{chunk.document.page_content}")
    return "\n\n".join(parts)


def estimate_tokens(text: str) -> int:
    """Rough count (~4 characters a token) for models that report no usage."""
    return max(1, len(text) // 4) if text else 0


class RagPipeline:
    def __init__(
        self,
        vector_store: QdrantVectorStore,
        llm: Runnable,
        *,
        service: str,
        k: int,
        relevance_threshold: float,
        ranking: str = "dense",
        candidates: int = 20,
        lexical: LexicalEncoder | None = None,
        lexical_index: LexicalIndex | None = None,
    ) -> None:
        self.vector_store = vector_store
        self.k = k
        self.relevance_threshold = relevance_threshold
        self.candidates = max(candidates, k)
        # Hybrid needs the collection's sparse vector; an older collection stays dense.
        self.lexical = lexical if ranking == "hybrid" else None
        self.ranking = "hybrid" if self.lexical is not None else "dense"
        # Qdrant local mode: BM25 from memory, fused here exactly as the server fuses.
        self.lexical_index = lexical_index if self.lexical is not None else None
        prompt = ChatPromptTemplate.from_messages(
            [
                ("system", SYSTEM_PROMPT),
                MessagesPlaceholder("history"),
                ("human", "Context:\n{context}\n\nQuestion: {question}"),
            ]
        ).partial(service=service)
        # LCEL: grounded prompt -> chat model (with fallbacks). The numbered context is
        # formatted before the chain: as a RunnablePassthrough.assign step it cost ~2 ms
        # of LangChain bookkeeping per question (run managers, signature inspection of
        # the lambda) for one string join.
        self.chain: Runnable = prompt | llm

    def search(self, question: str) -> Retrieval:
        """The top k chunks by the configured ranking, each with its relevance."""
        store = self.vector_store
        vector = store.embeddings.embed_query(question)
        asked = set(terms(question))
        if self.lexical is None:
            response = store.client.query_points(
                store.collection_name, query=vector, limit=self.k, with_payload=True
            )
            candidates = [(point, point.score) for point in response.points]
        elif self.lexical_index is not None:
            candidates = self._local_candidates(question, vector)
        else:
            # The union of both searches' candidates, scored by the embedding: cosine
            # similarity for every candidate, lexical ones included, in one request.
            response = store.client.query_points(
                store.collection_name,
                prefetch=[
                    qm.Prefetch(query=vector, limit=self.candidates),
                    qm.Prefetch(
                        query=self.lexical.query(question),
                        using=SPARSE_VECTOR,
                        limit=self.candidates,
                    ),
                ],
                query=vector,
                limit=2 * self.candidates,
                with_payload=True,
            )
            candidates = [(point, point.score) for point in response.points]
        scored = []
        for point, similarity in candidates:
            document = _document(point)
            covered, passage = coverage(asked, document.page_content)
            relevance = (float(similarity) + covered) / 2
            chunk = RetrievedChunk(document, relevance, float(similarity), covered)
            scored.append(
                (chunk, similarity + COVERAGE_WEIGHT * covered + PASSAGE_WEIGHT * passage)
            )
        if self.lexical is not None:
            scored.sort(key=lambda pair: -pair[1])  # stable: ties keep the embedding's order
        return Retrieval([chunk for chunk, _ in scored[: self.k]], self.relevance_threshold)

    def _local_candidates(self, question: str, vector: list[float]) -> list[tuple[Any, float]]:
        """Qdrant local mode: the embedding's candidates from Qdrant, BM25's from memory;
        the lexical ones the embedding did not find are read with their vectors."""
        assert self.lexical is not None and self.lexical_index is not None
        store = self.vector_store
        dense = store.client.query_points(
            store.collection_name, query=vector, limit=self.candidates, with_payload=True
        ).points
        seen = {point.id for point in dense}
        lexical = self.lexical_index.search(self.lexical.query(question), self.candidates)
        missing = [point.id for point in lexical if point.id not in seen]
        records = (
            store.client.retrieve(
                store.collection_name, missing, with_payload=True, with_vectors=[""]
            )
            if missing
            else []
        )
        candidates: list[tuple[Any, float]] = [(point, point.score) for point in dense]
        candidates += [(record, _cosine(vector, record.vector)) for record in records]
        return candidates

    def retrieve(self, question: str) -> list[RetrievedChunk]:
        """The context: the ranked top k, or none when none reaches the threshold."""
        return self.search(question).kept

    async def astream(
        self,
        question: str,
        chunks: list[RetrievedChunk],
        history: Sequence[BaseMessage] = (),
    ) -> AsyncIterator[AIMessageChunk]:
        """Yields the model's chunks; the caller merges them (usage is on the last one)."""
        inputs = {
            "question": question,
            "context": format_context(chunks),
            "history": list(history),
        }
        async for chunk in self.chain.astream(inputs):
            yield chunk


def _document(point: qm.ScoredPoint | qm.Record) -> Document:
    """A point as langchain-qdrant's Document (its payload layout, its id key)."""
    payload = point.payload or {}
    metadata = dict(payload.get(METADATA_KEY) or {})
    metadata["_id"] = point.id
    return Document(page_content=payload.get(CONTENT_KEY, ""), metadata=metadata)


def _cosine(query: list[float], stored: Any) -> float:
    """Cosine of the question and a stored vector (Qdrant keeps cosine vectors normalised;
    the question is normalised here)."""
    import numpy as np

    vector = stored.get("", stored) if isinstance(stored, dict) else stored
    if vector is None or not len(vector):
        return 0.0
    q = np.asarray(query, dtype=np.float64)
    # numpy, not a Python loop: the re-ranking computes this for up to 20 candidates.
    return float(q @ np.asarray(vector, dtype=np.float64) / (np.linalg.norm(q) or 1.0))


def make_pipeline(
    settings: Settings, vector_store: QdrantVectorStore, llm: Runnable
) -> RagPipeline:
    """The pipeline as the service runs it (k, ranking, threshold from settings): the API,
    the evaluation and benchmarks all build it here."""
    lexical = index = None
    client, collection = vector_store.client, vector_store.collection_name
    if settings.retrieval_ranking == "hybrid" and has_lexical(client, collection):
        lexical = LexicalEncoder(settings.chunk_size)
        if not settings.qdrant_url:  # local mode: see LexicalIndex
            index = LexicalIndex.load(client, collection)
    return RagPipeline(
        vector_store,
        llm,
        service=settings.service_name,
        k=settings.retrieval_k,
        relevance_threshold=float(settings.relevance_threshold or 0.0),
        ranking=settings.retrieval_ranking,
        candidates=settings.retrieval_candidates,
        lexical=lexical,
        lexical_index=index,
    )
