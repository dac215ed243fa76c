"""Runs the golden set through the service's retrieval as the service runs it (its k,
ranking and refusal threshold), and optionally through generation plus judging.

Two backends answer the same questions: `LocalBackend` (the pipeline built in this
process from the repository's settings, over the local Qdrant) and `ApiBackend` (a
running service: POST /retrieve for retrieval, POST /query for answers, so generated
answers count in its SLA).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from langchain_core.runnables import Runnable

from app.rag import RagPipeline, RetrievedChunk
from eval.golden import GoldenItem
from eval.judge import Judgement, judge
from eval.metrics import (
    first_hit_rank,
    first_passage_rank,
    hit_at_k,
    mean_reciprocal_rank,
    refusal_counts,
)


@dataclass(frozen=True)
class Passage:
    source: str
    text: str
    score: float


@dataclass(frozen=True)
class Retrieved:
    """What the service would use as context (after its threshold), and the best
    relevance score before it (what calibration reads)."""

    passages: list[Passage]
    best_score: float | None

    @property
    def refused(self) -> bool:
        return not self.passages


class Backend(Protocol):
    k: int
    threshold: float
    ranking: str

    def retrieve(self, question: str) -> Retrieved: ...

    def answer(self, question: str, retrieved: Retrieved) -> str: ...


def _passage(chunk: RetrievedChunk) -> Passage:
    return Passage(
        chunk.document.metadata.get("source", ""), chunk.document.page_content, chunk.score
    )


class LocalBackend:
    def __init__(self, pipeline: RagPipeline, runner: asyncio.Runner) -> None:
        self.pipeline = pipeline
        self.runner = runner
        self.k = pipeline.k
        self.threshold = pipeline.relevance_threshold
        self.ranking = pipeline.ranking
        self._chunks: dict[str, list[RetrievedChunk]] = {}

    def retrieve(self, question: str) -> Retrieved:
        found = self.pipeline.search(question)
        self._chunks[question] = found.kept
        return Retrieved([_passage(c) for c in found.kept], found.best_score)

    def answer(self, question: str, retrieved: Retrieved) -> str:
        chunks = self._chunks.pop(question, [])
        return self.runner.run(_generate(self.pipeline, question, chunks))


class ApiBackend:
    """A running service over HTTP."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        probe = self._post("/retrieve", {"question": "ping"})
        self.k = int(probe["k"])
        self.threshold = float(probe["threshold"])
        self.ranking = str(probe["ranking"])

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code >= 400:
            raise RuntimeError(
                f"{self.http.base_url}{path} answered HTTP {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response.json()

    def retrieve(self, question: str) -> Retrieved:
        body = self._post("/retrieve", {"question": question})
        passages = [Passage(c["source"], c["text"], float(c["score"])) for c in body["chunks"]]
        return Retrieved(passages, body.get("best_score"))

    def answer(self, question: str, retrieved: Retrieved) -> str:
        return str(self._post("/query", {"question": question})["answer"])


def _numbered(passages: list[Passage]) -> str:
    return "\n\n".join(f"[{i}] ({p.source})\n{p.text}" for i, p in enumerate(passages, 1))


def _rate(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None


def evaluate(
    golden: list[GoldenItem],
    backend: Backend,
    *,
    judge_model: Runnable | None = None,
    dataset: str = "",
) -> dict[str, Any]:
    page_ranks: list[int | None] = []
    passage_ranks: list[int | None] = []
    outcomes: list[tuple[bool, bool]] = []
    per_question = []
    claims = unsupported = 0
    judge_errors = []
    # Calls, token usage and model names the judge endpoint reported.
    judge_usage: dict[str, Any] = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    judge_models: set[str] = set()
    for item in golden:
        row, verdict = _question(item, backend, judge_model)
        outcomes.append((item.answerable, row["refused"]))
        if item.answerable:
            page_ranks.append(row["rank"])
            if item.quote:
                passage_ranks.append(row["passage_rank"])
        per_question.append(row)
        if verdict is not None:
            judge_usage["calls"] += 1
            judge_usage["prompt_tokens"] += verdict.prompt_tokens
            judge_usage["completion_tokens"] += verdict.completion_tokens
            judge_models.update([verdict.model] if verdict.model else [])
            claims += verdict.claims
            unsupported += verdict.unsupported
            if verdict.parse_error:
                judge_errors.append({"question": item.question, "error": verdict.parse_error})
    refusals = refusal_counts(outcomes)
    k = backend.k
    report: dict[str, Any] = {
        "dataset": dataset,
        "questions": len(golden),
        "answerable": refusals.answerable,
        "unanswerable": refusals.unanswerable,
        "k": k,
        "relevance_threshold": backend.threshold,
        "ranking": backend.ranking,
        # Right document in the top k, over the answerable questions (a refusal is a miss).
        "hit_at_k": _rate(hit_at_k(page_ranks, k)) if page_ranks else None,
        "mrr": _rate(mean_reciprocal_rank(page_ranks)) if page_ranks else None,
        # The chunk holding the quoted passage in the top k (questions with a quote).
        "passage_questions": len(passage_ranks),
        "passage_hit_at_k": _rate(hit_at_k(passage_ranks, k)) if passage_ranks else None,
        "passage_mrr": _rate(mean_reciprocal_rank(passage_ranks)) if passage_ranks else None,
        "refusal_precision": _rate(refusals.precision),
        "refusal_recall": _rate(refusals.recall),
        "refused_unanswerable": refusals.refused_unanswerable,
        "refused_answerable": refusals.refused_answerable,
        "hallucination_rate": round(unsupported / claims, 4) if claims else None,
        "claims_judged": claims,
        "judge_errors": judge_errors,
        "per_question": per_question,
    }
    if judge_model is not None:
        report["judge"] = {**judge_usage, "models": sorted(judge_models)}
    return report


def _question(
    item: GoldenItem, backend: Backend, judge_model: Runnable | None
) -> tuple[dict[str, Any], Judgement | None]:
    """Ranks one question's expected sources and passage; with a judge, answers and
    judges it."""
    retrieved = backend.retrieve(item.question)
    ranked = [(p.source, p.text) for p in retrieved.passages]
    row: dict[str, Any] = {
        "question": item.question,
        "answerable": item.answerable,
        "refused": retrieved.refused,
        "best_score": _rate(retrieved.best_score),
        "rank": first_hit_rank([s for s, _ in ranked], item.expected_sources),
        "passage_rank": first_passage_rank(ranked, item.expected_sources, item.quote),
        "retrieved": [s for s, _ in ranked],
    }
    # A refusal is said without the LLM and makes no claim to judge.
    if judge_model is None or retrieved.refused:
        return row, None
    answer = backend.answer(item.question, retrieved)
    row["answer"] = answer
    if not answer.strip():
        return row, None
    verdict = judge(judge_model, _numbered(retrieved.passages), answer)
    row.update(claims=verdict.claims, unsupported=verdict.unsupported)
    return row, verdict


async def _generate(pipeline: RagPipeline, question: str, chunks: list[RetrievedChunk]) -> str:
    parts = []
    async for chunk in pipeline.astream(question, chunks):
        parts.append(str(chunk.content))
    return "".join(parts)
