"""Evaluation: golden-file reading, retrieval and refusal metrics as the service runs
(its k, ranking and threshold), calibration, the judge, and a running service over HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from app.embeddings import HashingEmbeddings
from app.main import create_app
from app.rag import make_pipeline
from app.settings import REPO_ROOT, Settings
from app.vectorstore import make_vector_store
from eval.__main__ import main as eval_main
from eval.golden import GoldenError, read_golden
from eval.judge import parse_judgement
from eval.metrics import (
    calibrate_threshold,
    first_hit_rank,
    first_passage_rank,
    hit_at_k,
    mean_reciprocal_rank,
)
from eval.runner import ApiBackend, LocalBackend, evaluate
from ingestion.sources import SourcesConfig
from tests.conftest import fake_llm, run_ingest

EXAMPLE_GOLDEN = REPO_ROOT / "examples" / "golden.jsonl"


def test_rank_metrics():
    ranks = [first_hit_rank(["a", "a", "b"], ["b"]), first_hit_rank(["c"], ["b"]), 1]
    assert ranks == [2, None, 1]
    assert hit_at_k(ranks, 1) == 1 / 3 and hit_at_k(ranks, 2) == 2 / 3
    assert mean_reciprocal_rank(ranks) == (0.5 + 1) / 3
    assert first_hit_rank(["docs/ops/runbook.md"], ["ops/runbook.md"]) == 1
    assert first_hit_rank(["docs/xrunbook.md"], ["runbook.md"]) is None


def test_passage_rank_reads_words_not_markup():
    ranked = [
        ("docs/a.md", "Unrelated text."),
        ("docs/b.md", "Run `pg\\_dump` with\n**--jobs** to dump in parallel."),
        ("docs/c.md", "run pg_dump with --jobs to dump in parallel"),
    ]
    assert first_passage_rank(ranked, ["b.md"], "pg_dump with --jobs to dump") == 2
    # The passage must come from an expected document.
    assert first_passage_rank(ranked, ["a.md"], "pg_dump with --jobs to dump") is None
    assert first_passage_rank(ranked, ["b.md"], "") is None


def test_golden_reader_takes_aliases_arrays_and_refusal_items(tmp_path: Path):
    jsonl = tmp_path / "golden.jsonl"
    jsonl.write_text(
        "# comments and blank lines are skipped\n\n"
        '{"query": "Q1", "sources": "docs/a.md", "passage": "p", "answer": "A"}\n'
        '{"question": "Q2", "expected_sources": []}\n'
        '{"q": "Q3", "answerable": false, "tags": ["x"]}\n'
    )
    items = read_golden(jsonl)
    assert [(i.question, i.expected_sources, i.quote) for i in items] == [
        ("Q1", ["docs/a.md"], "p"),
        ("Q2", [], ""),
        ("Q3", [], ""),
    ]
    assert items[0].expected_answer == "A" and items[0].answerable
    assert not items[1].answerable and items[2].extra == {"tags": ["x"]}
    array = tmp_path / "golden.json"
    array.write_text(json.dumps([{"prompt": "Q", "page": "a.md"}]))
    assert read_golden(array)[0].expected_sources == ["a.md"]


def test_golden_reader_names_the_missing_field(tmp_path: Path):
    bad = tmp_path / "golden.jsonl"
    bad.write_text('{"question": "Q1", "expected_sources": ["a.md"]}\n{"question": "Q2"}\n')
    with pytest.raises(GoldenError) as missing:
        read_golden(bad)
    message = str(missing.value)
    assert f"{bad}:2" in message and "expected_sources" in message and "sources" in message
    bad.write_text('{"text": "no question here", "expected_sources": []}\n')
    with pytest.raises(GoldenError, match="no question; name it one of question, query"):
        read_golden(bad)
    bad.write_text("not json\n")
    with pytest.raises(GoldenError, match=":1: not a JSON object"):
        read_golden(bad)


def test_calibration_refuses_the_most_unanswerable_within_the_allowed_wrong_refusals():
    answerable = [(True, 0.55 + i / 100) for i in range(40)]
    unanswerable = [(False, 0.41), (False, 0.47), (False, 0.5)]
    threshold = calibrate_threshold(answerable + unanswerable)
    assert 0.5 < threshold < 0.55  # all three refused, no answerable one
    # One answerable question in 41 (under 3 %) may be refused to refuse the rest ...
    assert calibrate_threshold([*answerable, (True, 0.45), *unanswerable]) == threshold
    # ... two may not: the threshold stays under the second one.
    assert calibrate_threshold([*answerable, (True, 0.45), (True, 0.46), *unanswerable]) < 0.46
    # With few answerable questions none may be refused.
    assert calibrate_threshold([(True, 0.6), (True, 0.2), (False, 0.5)]) < 0.2
    with pytest.raises(ValueError, match="unanswerable"):
        calibrate_threshold([(True, 0.5)])


def _pipeline(settings: Settings, indexed, llm=None):
    store = make_vector_store(indexed, settings, HashingEmbeddings())
    return make_pipeline(settings, store, llm or fake_llm())


def test_golden_set_evaluates_with_the_service_threshold_and_a_judge(settings, indexed):
    golden = read_golden(EXAMPLE_GOLDEN)
    assert len(golden) >= 10 and any(not g.answerable for g in golden)
    judge = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(content=json.dumps({"claims": [{"claim": "x", "supported": ok}]}))
                for ok in [True, False] * len(golden)
            ]
        )
    )
    with asyncio.Runner() as runner:
        backend = LocalBackend(_pipeline(settings, indexed), runner)
        result = evaluate(golden, backend, judge_model=judge, dataset="golden.jsonl")
    assert result["questions"] == len(golden)
    assert result["k"] == settings.retrieval_k
    assert result["relevance_threshold"] == settings.relevance_threshold
    assert result["ranking"] == "hybrid"
    # Even lexical hashing embeddings find most expected sources on this small corpus.
    assert result["hit_at_k"] >= 0.6 and 0 < result["mrr"] <= 1
    assert result["passage_hit_at_k"] >= 0.5 and result["passage_questions"] == 9
    # A question is refused exactly when nothing reaches the service's threshold.
    rows = result["per_question"]
    for row in rows:
        assert row["refused"] == (row["best_score"] < settings.relevance_threshold), row
    bread = next(r for r in rows if "bread" in r["question"])
    assert bread["refused"] and bread["retrieved"] == []
    refused = sum(1 for r in rows if r["refused"] and not r["answerable"])
    assert result["refused_unanswerable"] == refused
    assert result["refusal_recall"] == refused / result["unanswerable"]
    assert result["claims_judged"] > 0
    assert 0 <= result["hallucination_rate"] <= 1
    refused = [r for r in result["per_question"] if r["refused"]]
    assert refused and all("answer" not in r for r in refused)  # no LLM call for a refusal
    assert {"question", "rank", "passage_rank", "retrieved", "best_score"} <= set(
        result["per_question"][0]
    )


def test_a_threshold_above_every_score_refuses_everything(settings, indexed):
    settings.relevance_threshold = 1.01
    with asyncio.Runner() as runner:
        result = evaluate(
            read_golden(EXAMPLE_GOLDEN), LocalBackend(_pipeline(settings, indexed), runner)
        )
    assert result["hit_at_k"] == 0 and result["refused_answerable"] == result["answerable"]
    assert result["refusal_precision"] == round(result["unanswerable"] / result["questions"], 4)


def test_a_running_service_evaluates_through_retrieve_and_query(settings, indexed):
    """`python -m eval --api-url`: the same figures through the API, answers from /query."""
    golden = read_golden(EXAMPLE_GOLDEN)
    with asyncio.Runner() as runner:
        local = evaluate(golden, LocalBackend(_pipeline(settings, indexed), runner))
    app = create_app(settings, llm=fake_llm(), embeddings=HashingEmbeddings(), client=indexed)
    judge = GenericFakeChatModel(messages=iter([AIMessage(content='{"claims": []}')] * len(golden)))
    with TestClient(app) as http:
        remote = evaluate(golden, ApiBackend(http), judge_model=judge)
        queries = http.get("/metrics").text
    for key in ("hit_at_k", "mrr", "passage_hit_at_k", "refusal_recall", "refused_answerable"):
        assert remote[key] == local[key], key
    answered = [r for r in remote["per_question"] if "answer" in r]
    assert answered and all(r["answer"] for r in answered)
    # Only the /query calls count as requests; /retrieve does not.
    assert 'rag_requests_total{outcome="success"} ' + str(float(len(answered))) in queries


@pytest.fixture
def cli_env(monkeypatch, settings: Settings, tmp_path: Path) -> Path:
    """`python -m eval` reads its settings from the environment, as in the repository."""
    for name, value in {
        "QDRANT_PATH": str(settings.qdrant_path),
        "QDRANT_URL": "",
        "EMBEDDING_PROVIDER": "hashing",
        "CALIBRATION_FILE": str(tmp_path / "calibration.json"),
        "LLM_BASE_URL": "http://127.0.0.1:9/v1",
        "FALLBACK_LLM_BASE_URL": "",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("RELEVANCE_THRESHOLD", raising=False)
    return tmp_path / "calibration.json"


def test_cli_calibrates_and_writes_the_service_threshold(
    cli_env: Path, settings, client, corpus, capsys
):
    run_ingest(settings, client, corpus, SourcesConfig(["docs"], [], [], []))
    client.close()  # local mode: one process (here: one client) per folder
    assert eval_main(["--golden", str(EXAMPLE_GOLDEN), "--calibrate"]) == 0
    report = json.loads(capsys.readouterr().out)
    written = json.loads(cli_env.read_text())
    assert written["model"] == "hashing" and written["ranking"] == "hybrid"
    assert report["relevance_threshold"] == written["relevance_threshold"]
    assert report["refused_unanswerable"] == 2 and report["refused_answerable"] <= 1
    # The service reads it at start (no RELEVANCE_THRESHOLD in the environment).
    fresh = Settings(_env_file=None)
    assert fresh.relevance_threshold == written["relevance_threshold"]
    assert fresh.threshold_origin.startswith("calibrated")


def test_cli_rejects_a_bad_golden_file_with_exit_2(cli_env: Path, tmp_path: Path, capsys):
    bad = tmp_path / "golden.jsonl"
    bad.write_text('{"question": "Q"}\n')
    assert eval_main(["--golden", str(bad)]) == 2
    assert "expected_sources" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert eval_main(["--golden", str(empty)]) == 2
    assert "holds no questions" in capsys.readouterr().err
    assert not cli_env.exists()


def test_judgement_parsing():
    reply = (
        'Here: {"claims": [{"claim": "a", "supported": true}, {"claim": "b", "supported": false}]}'
    )
    verdict = parse_judgement(reply)
    assert (verdict.claims, verdict.unsupported, verdict.parse_error) == (2, 1, None)
    assert parse_judgement("no json").parse_error
    copied = '{"claims": [{"claim": "line one\nline two", "supported": true}]}'
    assert parse_judgement(copied).claims == 1  # a raw line break copied from the context
