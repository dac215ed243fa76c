"""Runs the golden set through retrieval (and optionally generation plus judging)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from app.rag import RagPipeline, format_context
from eval.judge import judge
from eval.metrics import first_hit_rank, hit_at_k, mean_reciprocal_rank


@dataclass(frozen=True)
class GoldenItem:
    question: str
    expected_answer: str
    expected_sources: list[str]


def read_golden(path: Path) -> list[GoldenItem]:
    items = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append(
                GoldenItem(row["question"], row.get("expected_answer", ""), row["expected_sources"])
            )
        except (json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{path}:{number}: bad golden line ({exc})") from exc
    return items


def evaluate(
    golden: list[GoldenItem],
    pipeline: RagPipeline,
    *,
    k: int,
    judge_model: BaseChatModel | None = None,
) -> dict[str, Any]:
    ranks: list[int | None] = []
    per_question = []
    claims = unsupported = 0
    judge_errors = []
    for item in golden:
        hits = pipeline.vector_store.similarity_search_with_score(item.question, k=k)
        ranked = [doc.metadata.get("source", "") for doc, _ in hits]
        rank = first_hit_rank(ranked, item.expected_sources)
        ranks.append(rank)
        row: dict[str, Any] = {"question": item.question, "rank": rank, "retrieved": ranked}
        if judge_model is not None:
            chunks = pipeline.retrieve(item.question)
            answer = asyncio.run(_generate(pipeline, item.question, chunks)) if chunks else ""
            verdict = judge(judge_model, format_context(chunks), answer) if answer else None
            if verdict is not None:
                claims += verdict.claims
                unsupported += verdict.unsupported
                if verdict.parse_error:
                    judge_errors.append({"question": item.question, "error": verdict.parse_error})
                row.update(answer=answer, claims=verdict.claims, unsupported=verdict.unsupported)
        per_question.append(row)
    return {
        "questions": len(golden),
        "k": k,
        "hit_at_k": round(hit_at_k(ranks, k), 4),
        "mrr": round(mean_reciprocal_rank(ranks), 4),
        "hallucination_rate": round(unsupported / claims, 4) if claims else None,
        "claims_judged": claims,
        "judge_errors": judge_errors,
        "per_question": per_question,
    }


async def _generate(pipeline: RagPipeline, question: str, chunks) -> str:
    parts = []
    async for chunk in pipeline.astream(question, chunks):
        parts.append(str(chunk.content))
    return "".join(parts)
