"""Evaluation: retrieval metrics on the golden set and the hallucination judge."""

from __future__ import annotations

import json

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from app.embeddings import HashingEmbeddings
from app.rag import RagPipeline
from app.settings import REPO_ROOT
from app.vectorstore import make_vector_store
from eval.judge import parse_judgement
from eval.metrics import first_hit_rank, hit_at_k, mean_reciprocal_rank
from eval.runner import evaluate, read_golden
from tests.conftest import fake_llm


def test_rank_metrics():
    ranks = [first_hit_rank(["a", "a", "b"], ["b"]), first_hit_rank(["c"], ["b"]), 1]
    assert ranks == [2, None, 1]
    assert hit_at_k(ranks, 1) == 1 / 3 and hit_at_k(ranks, 2) == 2 / 3
    assert mean_reciprocal_rank(ranks) == (0.5 + 1) / 3


def test_judgement_parsing():
    reply = (
        'Here: {"claims": [{"claim": "a", "supported": true}, {"claim": "b", "supported": false}]}'
    )
    verdict = parse_judgement(reply)
    assert (verdict.claims, verdict.unsupported, verdict.parse_error) == (2, 1, None)
    assert parse_judgement("no json").parse_error


def test_golden_set_evaluates_with_a_judge(settings, indexed):
    golden = read_golden(REPO_ROOT / "eval" / "golden.jsonl")
    assert len(golden) >= 5
    store = make_vector_store(indexed, settings, HashingEmbeddings())
    pipeline = RagPipeline(
        store, fake_llm(), service="t", k=4, relevance_threshold=settings.relevance_threshold
    )
    judge = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(content=json.dumps({"claims": [{"claim": "x", "supported": ok}]}))
                for ok in [True, False] * len(golden)
            ]
        )
    )
    result = evaluate(golden, pipeline, k=4, judge_model=judge)
    assert result["questions"] == len(golden)
    # Even lexical hashing embeddings find most expected sources on this small corpus.
    assert result["hit_at_k"] >= 0.6 and 0 < result["mrr"] <= 1
    assert result["claims_judged"] > 0
    assert 0 <= result["hallucination_rate"] <= 1
    assert {"question", "rank", "retrieved"} <= set(result["per_question"][0])
