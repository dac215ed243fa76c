"""FastAPI app: POST /query, OpenAI-compatible /v1/chat/completions, health and metrics.

Run with `uvicorn app.main:app` (the Makefile's `dev` target does).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from qdrant_client import QdrantClient
from starlette.concurrency import run_in_threadpool

from app.embeddings import make_embeddings
from app.llm import make_llm, probe_urls
from app.metrics import ServiceMetrics
from app.rag import Answer, make_pipeline
from app.runtime import limit_torch_threads
from app.schemas import (
    ChatCompletionRequest,
    QueryRequest,
    QueryResponse,
    RetrieveRequest,
    RetrieveResponse,
)
from app.service import LLMTimeout, LLMUnavailable, RagService, Token
from app.settings import Settings, get_settings
from app.usage import start_usage_push
from app.vectorstore import make_client, make_vector_store


def _too_long(settings: Settings, field: tuple[str | int, ...], value: str) -> None:
    if len(value) > settings.max_question_chars:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("body", *field),
                    "msg": f"question is {len(value)} characters; the limit is "
                    f"{settings.max_question_chars} (MAX_QUESTION_CHARS): shorten it",
                    "input": value[:100],
                }
            ]
        )


def _known_adapter(rag: RagService, field: tuple[str, ...], name: str | None) -> None:
    """422 naming the field and every model a request may name, for an unknown one."""
    if name is None or name in rag.adapters:
        return
    known = [rag.model] + sorted(rag.adapters)
    raise RequestValidationError(
        [
            {
                "type": "unknown_model",
                "loc": ("body", *field),
                "msg": f"unknown {'model' if field == ('model',) else 'LoRA adapter'} "
                f"{name!r}; this service serves: {', '.join(known)}"
                + ("" if rag.adapters else " (it has no LoRA adapters)"),
                "input": name,
            }
        ]
    )


def create_app(
    settings: Settings | None = None,
    *,
    llm: Runnable | None = None,
    embeddings: Embeddings | None = None,
    client: QdrantClient | None = None,
    usage_transport: httpx.AsyncBaseTransport | None = None,
    adapter_llms: Mapping[str, Runnable] | None = None,
) -> FastAPI:
    """Builds the app; tests inject a fake chat model (per LoRA adapter too), embeddings
    or a Qdrant client."""
    settings = settings or get_settings()
    metrics = ServiceMetrics()
    llm_probes = [] if llm is not None else probe_urls(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_torch_threads(settings)
        qdrant = client or make_client(settings)
        store = make_vector_store(
            qdrant, settings, embeddings or make_embeddings(settings, for_queries=True)
        )
        pipeline = make_pipeline(settings, store, llm or make_llm(settings))
        # One pipeline per LoRA adapter: same retrieval, answers through the adapter.
        adapters = {
            name: make_pipeline(
                settings, store, (adapter_llms or {}).get(name) or make_llm(settings, name)
            )
            for name in settings.lora_adapters
        }
        usage = start_usage_push(settings, usage_transport)
        app.state.qdrant = qdrant
        app.state.usage = usage
        app.state.rag = RagService(
            pipeline,
            metrics,
            service=settings.service_name,
            model=settings.llm_model,
            usage=usage,
            adapters=adapters,
        )
        try:
            yield
        finally:
            if usage is not None:
                await usage.stop()
            if client is None:
                qdrant.close()

    app = FastAPI(
        title=f"{settings.service_name} RAG API",
        version="1.0.0",
        description="Answers questions about the team's documents, with citations.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics

    @app.exception_handler(RequestValidationError)
    async def refused(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path != "/retrieve":  # retrieval alone is not a served request
            metrics.requests.labels(outcome="refused").inc()
        errors = [{k: e[k] for k in ("type", "loc", "msg") if k in e} for e in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": errors})

    @app.exception_handler(LLMTimeout)
    async def llm_timeout(request: Request, exc: LLMTimeout) -> JSONResponse:
        return JSONResponse(
            status_code=504, content={"detail": f"the language model timed out: {exc}"}
        )

    @app.exception_handler(LLMUnavailable)
    async def llm_unavailable(request: Request, exc: LLMUnavailable) -> JSONResponse:
        return JSONResponse(
            status_code=502, content={"detail": f"no language model endpoint answered: {exc}"}
        )

    @app.post("/query", response_model=QueryResponse)
    async def query(body: QueryRequest, request: Request) -> dict[str, Any]:
        _too_long(settings, ("question",), body.question)
        rag: RagService = request.app.state.rag
        adapter = None if body.adapter in (None, settings.llm_model) else body.adapter
        _known_adapter(rag, ("adapter",), adapter)
        answer: Answer = await rag.answer(body.question, adapter=adapter)
        return _query_response(answer)

    @app.post("/retrieve", response_model=RetrieveResponse)
    async def retrieve(body: RetrieveRequest, request: Request) -> dict[str, Any]:
        """The ranked chunks /query would use (same k, ranking and threshold), without
        calling the LLM and without counting as a request (metrics, usage): what
        `python -m eval --api-url` scores."""
        _too_long(settings, ("question",), body.question)
        pipeline = request.app.state.rag.pipeline
        found = await run_in_threadpool(pipeline.search, body.question)
        return {
            "chunks": [c.passage() for c in found.kept],
            "refused": not found.kept,
            "best_score": None if found.best_score is None else round(found.best_score, 4),
            "k": pipeline.k,
            "threshold": pipeline.relevance_threshold,
            "ranking": pipeline.ranking,
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        question = body.messages[-1].content.strip()
        _too_long(settings, ("messages", len(body.messages) - 1, "content"), question)
        history = [_to_message(m.role, m.content) for m in body.messages[:-1]]
        rag: RagService = request.app.state.rag
        # The OpenAI "model" names the base model or a LoRA adapter.
        adapter = None if body.model in (None, settings.llm_model) else body.model
        _known_adapter(rag, ("model",), adapter)
        model = rag.model_for(adapter)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        if not body.stream:
            answer = await rag.answer(question, history, adapter)
            return _completion(completion_id, model, answer)
        events = rag.stream(question, history, adapter)
        # Pull the first item before answering so an unreachable LLM becomes a 502/504
        # status, not a broken stream.
        first = await anext(events)
        return StreamingResponse(
            _sse(completion_id, model, first, events), media_type="text/event-stream"
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await run_in_threadpool(request.app.state.qdrant.get_collections)
            checks["qdrant"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks["qdrant"] = f"unreachable: {exc}"
        checks["llm"] = await _probe_llm(llm_probes)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ready" if ready else "not ready", "checks": checks},
        )

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _probe_llm(urls: list[str]) -> str:
    """Ready when any endpoint answers: the fallback covers a down GPU endpoint."""
    if not urls:
        return "ok"
    failures = []
    async with httpx.AsyncClient(timeout=2.0) as http:
        for url in urls:
            try:
                response = await http.get(url)
                if response.status_code < 500:
                    return "ok"
                failures.append(f"{url}: HTTP {response.status_code}")
            except httpx.HTTPError as exc:
                failures.append(f"{url}: {exc.__class__.__name__}")
    return "unreachable: " + "; ".join(failures)


def _to_message(role: str, content: str) -> BaseMessage:
    return {"system": SystemMessage, "assistant": AIMessage}.get(role, HumanMessage)(
        content=content
    )


def _usage(answer: Answer) -> dict[str, Any]:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
        "reported_by_model": answer.usage_reported,
    }


def _query_response(answer: Answer) -> dict[str, Any]:
    return {
        "answer": answer.text,
        "citations": [c.citation() for c in answer.chunks],
        "usage": _usage(answer),
        "latency_ms": answer.extra.get("latency_ms", 0.0),
        "model": answer.model,
    }


def _completion(completion_id: str, model: str, answer: Answer) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(answer),
        # Not in OpenAI's schema; clients that do not know it ignore it.
        "citations": [c.citation() for c in answer.chunks],
    }


async def _sse(
    completion_id: str, model: str, first: Token | Answer, rest: AsyncIterator[Token | Answer]
) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})

    async def items() -> AsyncIterator[Token | Answer]:
        yield first
        async for item in rest:
            yield item

    try:
        async for item in items():
            if isinstance(item, Token):
                yield chunk({"content": item.text})
            else:
                yield chunk(
                    {},
                    "stop",
                    usage=_usage(item),
                    citations=[c.citation() for c in item.chunks],
                )
    except (LLMTimeout, LLMUnavailable) as exc:
        yield f"data: {json.dumps({'error': {'message': str(exc)}})}\n\n"
    yield "data: [DONE]\n\n"


app = create_app()
