"""The RAG API with a fake chat model: answers, citations, usage, limits, metrics."""

from __future__ import annotations

import asyncio
import json

import httpx
from fastapi.testclient import TestClient
from langchain_core.runnables import RunnableLambda

from app.embeddings import HashingEmbeddings
from app.main import create_app
from app.rag import NO_CONTEXT_ANSWER
from app.usage import UsageReporter
from tests.conftest import ANSWER, fake_llm

QUESTION = "How do I ask the assistant a question over HTTP with a POST request?"


def metric(client: TestClient, line_start: str) -> float:
    text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


def test_query_answers_with_citations_and_usage(api: TestClient):
    response = api.post("/query", json={"question": QUESTION})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["answer"] == ANSWER
    assert body["citations"], "an answer must cite its sources"
    top = body["citations"][0]
    assert top["source"] == "docs/getting-started.md"
    assert top["title"].startswith("Getting started")
    assert top["section_or_page"] and top["snippet"] and 0 < top["score"] <= 1
    assert body["usage"] == {
        "prompt_tokens": 120,
        "completion_tokens": 14,
        "total_tokens": 134,
        "reported_by_model": True,
    }
    assert body["latency_ms"] > 0


def test_irrelevant_question_gets_i_dont_know_without_llm(settings, indexed):
    def must_not_be_called(_):
        raise AssertionError("the LLM must not be called without relevant context")

    app = create_app(
        settings,
        llm=RunnableLambda(must_not_be_called),
        embeddings=HashingEmbeddings(),
        client=indexed,
    )
    with TestClient(app) as client:
        body = client.post("/query", json={"question": "zebra pineapple quantum"}).json()
        assert body["answer"] == NO_CONTEXT_ANSWER
        assert body["citations"] == [] and body["usage"]["total_tokens"] == 0
        assert metric(client, "rag_no_context_answers_total") == 1
        assert metric(client, 'rag_requests_total{outcome="success"}') == 1


def test_empty_and_oversized_questions_are_422(api: TestClient, settings):
    for question in ["", "   "]:
        response = api.post("/query", json={"question": question})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "question"]
    long = "why " * settings.max_question_chars
    response = api.post("/query", json={"question": long})
    assert response.status_code == 422
    assert "MAX_QUESTION_CHARS" in response.json()["detail"][0]["msg"]
    assert api.post("/query", json={}).status_code == 422
    assert metric(api, 'rag_requests_total{outcome="refused"}') == 4


def test_chat_completions_non_streaming(api: TestClient):
    response = api.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": ANSWER}
    assert body["usage"]["total_tokens"] == 134
    assert body["citations"][0]["source"] == "docs/getting-started.md"


def test_chat_completions_streaming_ends_with_usage(api: TestClient):
    with api.stream(
        "POST",
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": QUESTION}], "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == ANSWER
    assert len(chunks) > 3, "the answer must arrive in several chunks"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 14


def test_chat_completions_needs_a_user_question(api: TestClient):
    response = api.post(
        "/v1/chat/completions", json={"messages": [{"role": "system", "content": "hi"}]}
    )
    assert response.status_code == 422


def test_fallback_answers_when_the_primary_llm_fails(settings, indexed):
    def gpu_down(_):
        raise ConnectionError("vLLM endpoint unreachable")

    llm = RunnableLambda(gpu_down).with_fallbacks([fake_llm("CPU answer [1].")])
    app = create_app(settings, llm=llm, embeddings=HashingEmbeddings(), client=indexed)
    with TestClient(app) as client:
        body = client.post("/query", json={"question": QUESTION}).json()
    assert body["answer"] == "CPU answer [1]."


def test_llm_failure_is_502_and_counted(settings, indexed):
    import openai

    def down(_):
        raise openai.APIConnectionError(request=httpx.Request("POST", "http://vllm/v1"))

    app = create_app(
        settings, llm=RunnableLambda(down), embeddings=HashingEmbeddings(), client=indexed
    )
    with TestClient(app) as client:
        response = client.post("/query", json={"question": QUESTION})
        assert response.status_code == 502
        assert metric(client, 'rag_requests_total{outcome="error"}') == 1


def test_metrics_names_are_the_documented_contract(api: TestClient):
    api.post("/query", json={"question": QUESTION})
    text = api.get("/metrics").text
    for name in (
        "rag_request_latency_seconds_bucket",
        "rag_time_to_first_token_seconds_bucket",
        "rag_prompt_tokens_total",
        "rag_completion_tokens_total",
    ):
        assert name in text
    assert metric(api, "rag_prompt_tokens_total") == 120
    assert metric(api, "rag_completion_tokens_total") == 14
    assert metric(api, 'rag_requests_total{outcome="success"}') == 1
    assert metric(api, "rag_request_latency_seconds_count") == 1


def test_health_and_readiness(api: TestClient, settings, indexed):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["qdrant"] == "ok"
    # Without an injected model the real endpoints are probed: nothing listens there.
    unreachable = settings.model_copy(
        update={"llm_base_url": "http://127.0.0.1:9/v1", "fallback_llm_base_url": ""}
    )
    app = create_app(unreachable, embeddings=HashingEmbeddings(), client=indexed)
    with TestClient(app) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["llm"].startswith("unreachable")


def test_usage_is_pushed_in_batches(settings, indexed):
    received: list[dict] = []

    def portal(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/sla/usage"
        assert request.headers["authorization"] == "Bearer ingest-token"
        received.append(json.loads(request.content))
        return httpx.Response(202, json={"accepted": len(received[-1]["records"])})

    pushing = settings.model_copy(
        update={
            "ragportal_url": "http://portal.test",
            "ragportal_ingest_token": "ingest-token",
            "usage_batch_size": 2,
        }
    )
    app = create_app(
        pushing,
        llm=fake_llm(),
        embeddings=HashingEmbeddings(),
        client=indexed,
        usage_transport=httpx.MockTransport(portal),
    )
    with TestClient(app) as client:
        for _ in range(3):
            client.post("/query", json={"question": QUESTION})
    # Shutdown flushes the rest: 3 records in batches of at most 2.
    records = [r for batch in received for r in batch["records"]]
    assert len(records) == 3 and all(len(b["records"]) <= 2 for b in received)
    assert len({b["batch_id"] for b in received}) == len(received)
    record = records[0]
    assert record["service"] == settings.service_name and record["outcome"] == "success"
    assert record["prompt_tokens"] == 120 and record["completion_tokens"] == 14
    assert record["latency_ms"] > 0 and record["ttft_ms"] is not None
    assert set(record) == {
        "service",
        "timestamp",
        "latency_ms",
        "ttft_ms",
        "prompt_tokens",
        "completion_tokens",
        "outcome",
        "model",
        "adapter",
    }
    assert record["adapter"] is None  # the base model answered


def test_failed_usage_batch_is_retried_with_the_same_id():
    calls: list[dict] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        return httpx.Response(503 if len(calls) == 1 else 202)

    async def scenario() -> None:
        reporter = UsageReporter(
            "http://portal.test", "t", batch_size=10, transport=httpx.MockTransport(flaky)
        )
        reporter.record({"outcome": "success"})
        assert await reporter.flush() is False
        assert await reporter.flush() is True
        await reporter.stop()

    asyncio.run(scenario())
    assert len(calls) == 2 and calls[0]["batch_id"] == calls[1]["batch_id"]


def _lora_app(settings, indexed, received: list[dict]):
    """The API with one LoRA adapter, each model a fake that says who answered."""

    def portal(request: httpx.Request) -> httpx.Response:
        received.append(json.loads(request.content))
        return httpx.Response(200, json={})

    with_adapter = settings.model_copy(
        update={
            "lora_adapters": ["support-tone"],
            "ragportal_url": "http://portal.test",
            "ragportal_ingest_token": "ingest-token",
        }
    )
    return create_app(
        with_adapter,
        llm=fake_llm("base model answer [1]"),
        adapter_llms={"support-tone": fake_llm("support-tone answer [1]")},
        embeddings=HashingEmbeddings(),
        client=indexed,
        usage_transport=httpx.MockTransport(portal),
    )


def test_a_request_chooses_a_lora_adapter_by_name(settings, indexed):
    received: list[dict] = []
    base = settings.llm_model
    question = {"role": "user", "content": QUESTION}
    with TestClient(_lora_app(settings, indexed, received)) as client:
        tone = client.post("/query", json={"question": QUESTION, "adapter": "support-tone"})
        assert tone.status_code == 200, tone.text
        assert tone.json()["answer"] == "support-tone answer [1]"
        assert tone.json()["model"] == "support-tone"
        plain = client.post("/query", json={"question": QUESTION}).json()
        assert plain["answer"] == "base model answer [1]" and plain["model"] == base
        chat = client.post(
            "/v1/chat/completions", json={"model": "support-tone", "messages": [question]}
        ).json()
        assert chat["model"] == "support-tone"
        assert chat["choices"][0]["message"]["content"] == "support-tone answer [1]"
        named_base = client.post(
            "/v1/chat/completions", json={"model": base, "messages": [question]}
        ).json()
        assert named_base["choices"][0]["message"]["content"] == "base model answer [1]"
        with client.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "support-tone", "messages": [question], "stream": True},
        ) as response:
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        chunks = [json.loads(e) for e in events[:-1]]
        assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == (
            "support-tone answer [1]"
        )
    records = [r for batch in received for r in batch["records"]]
    assert [r["adapter"] for r in records] == [
        "support-tone",
        None,
        "support-tone",
        None,
        "support-tone",
    ]
    assert records[0]["model"] == "support-tone" and records[1]["model"] == base


def test_an_unknown_adapter_is_422_listing_the_known_ones(settings, indexed):
    received: list[dict] = []
    with TestClient(_lora_app(settings, indexed, received)) as client:
        for path, body, field in (
            ("/query", {"question": QUESTION, "adapter": "legal"}, ["body", "adapter"]),
            (
                "/v1/chat/completions",
                {"model": "legal", "messages": [{"role": "user", "content": QUESTION}]},
                ["body", "model"],
            ),
        ):
            response = client.post(path, json=body)
            assert response.status_code == 422, response.text
            (error,) = response.json()["detail"]
            assert error["loc"] == field
            assert "'legal'" in error["msg"]
            assert f"serves: {settings.llm_model}, support-tone" in error["msg"]
        assert metric(client, 'rag_requests_total{outcome="refused"}') == 2
    assert [r for batch in received for r in batch["records"]] == []


def test_an_adapter_answers_through_vllm_only(settings):
    from app.llm import make_llm

    configured = settings.model_copy(
        update={
            "llm_base_url": "http://vllm:8000/v1",
            "fallback_llm_base_url": "http://cpu:8080/v1",
        }
    )
    chat = make_llm(configured, "support-tone")
    # The adapter's own model name on the vLLM endpoint, and no CPU fallback (the CPU
    # server has no adapter: its answer would be the base model's under another name).
    assert chat.model_name == "support-tone"
    assert str(chat.openai_api_base) == "http://vllm:8000/v1"
    assert not hasattr(chat, "fallbacks")


def test_the_api_says_at_start_when_usage_push_is_off_and_why(settings, indexed, caplog):
    for url, token, reason in (
        ("", "", "RAGPORTAL_URL and RAGPORTAL_INGEST_TOKEN are empty"),
        ("http://portal.test", "", "RAGPORTAL_INGEST_TOKEN is empty"),
    ):
        caplog.clear()
        off = settings.model_copy(update={"ragportal_url": url, "ragportal_ingest_token": token})
        app = create_app(off, llm=fake_llm(), embeddings=HashingEmbeddings(), client=indexed)
        with caplog.at_level("INFO", logger="app.usage"), TestClient(app):
            pass
        messages = [r.getMessage() for r in caplog.records if r.name == "app.usage"]
        assert any("usage push to rag-portal is OFF" in m and reason in m for m in messages), (
            messages
        )
