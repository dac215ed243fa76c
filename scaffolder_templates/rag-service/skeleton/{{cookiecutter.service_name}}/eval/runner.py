"""Runs the golden set through retrieval (and optionally generation plus judging)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable

from app.rag import RagPipeline, format_context
from eval.judge import Judgement, judge
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
    judge_model: Runnable | None = None,
) -> dict[str, Any]:
    ranks: list[int | None] = []
    per_question = []
    claims = unsupported = 0
    judge_errors = []
    # Calls, token usage and model names the judge endpoint reported.
    judge_usage: dict[str, Any] = {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    judge_models: set[str] = set()
    # One event loop for every generation: the chat model's async HTTP client is bound
    # to the loop it first ran on (an asyncio.run per question closes it under the
    # client: "Event loop is closed" on the second answer).
    with asyncio.Runner() as runner:
        for item in golden:
            row, verdict = _question(item, pipeline, k, judge_model, runner)
            ranks.append(row["rank"])
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
    report: dict[str, Any] = {
        "questions": len(golden),
        "k": k,
        "hit_at_k": round(hit_at_k(ranks, k), 4),
        "mrr": round(mean_reciprocal_rank(ranks), 4),
        "hallucination_rate": round(unsupported / claims, 4) if claims else None,
        "claims_judged": claims,
        "judge_errors": judge_errors,
        "per_question": per_question,
    }
    if judge_model is not None:
        report["judge"] = {**judge_usage, "models": sorted(judge_models)}
    return report


def _question(
    item: GoldenItem,
    pipeline: RagPipeline,
    k: int,
    judge_model: Runnable | None,
    runner: asyncio.Runner,
) -> tuple[dict[str, Any], Judgement | None]:
    """Ranks the expected sources for one question; with a judge, answers and judges it."""
    hits = pipeline.vector_store.similarity_search_with_score(item.question, k=k)
    ranked = [doc.metadata.get("source", "") for doc, _ in hits]
    rank = first_hit_rank(ranked, item.expected_sources)
    row: dict[str, Any] = {"question": item.question, "rank": rank, "retrieved": ranked}
    if judge_model is None:
        return row, None
    # No relevant chunk: the API answers "I don't know" without the LLM, and a refusal
    # makes no claim to judge.
    chunks = pipeline.retrieve(item.question)
    if not chunks:
        return row, None
    answer = runner.run(_generate(pipeline, item.question, chunks))
    row["answer"] = answer
    if not answer.strip():
        return row, None
    verdict = judge(judge_model, format_context(chunks), answer)
    row.update(claims=verdict.claims, unsupported=verdict.unsupported)
    return row, verdict


async def _generate(pipeline: RagPipeline, question: str, chunks) -> str:
    parts = []
    async for chunk in pipeline.astream(question, chunks):
        parts.append(str(chunk.content))
    return "".join(parts)
