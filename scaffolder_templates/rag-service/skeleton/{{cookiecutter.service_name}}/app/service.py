"""Answering one question: retrieval, the LLM call, metrics and usage records.

Shared by POST /query and POST /v1/chat/completions so both count the same way. A
request may name a LoRA adapter: retrieval is the same, the answer comes from the
adapter's pipeline (vLLM serves each adapter under its own model name), and the usage
record carries the adapter so the portal reports usage per adapter.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import openai
from langchain_core.messages import AIMessageChunk, BaseMessage
from starlette.concurrency import run_in_threadpool

from app.metrics import ServiceMetrics
from app.rag import NO_CONTEXT_ANSWER, Answer, RagPipeline, estimate_tokens
from app.usage import UsageReporter


class LLMTimeout(Exception):
    """Every LLM endpoint timed out."""


class LLMUnavailable(Exception):
    """Every LLM endpoint failed."""


@dataclass
class Token:
    text: str


class RagService:
    def __init__(
        self,
        pipeline: RagPipeline,
        metrics: ServiceMetrics,
        *,
        service: str,
        model: str,
        usage: UsageReporter | None = None,
        adapters: Mapping[str, RagPipeline] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self.service = service
        self.model = model
        self.usage = usage
        # LoRA adapter name -> the pipeline that answers through it.
        self.adapters = dict(adapters or {})

    def refused(self) -> None:
        self.metrics.requests.labels(outcome="refused").inc()

    def model_for(self, adapter: str | None) -> str:
        """The model name a request is answered by: the adapter's, else the base model's."""
        return adapter or self.model

    async def stream(
        self, question: str, history: Sequence[BaseMessage] = (), adapter: str | None = None
    ) -> AsyncIterator[Token | Answer]:
        """Yields answer tokens, then the finished Answer; records metrics and usage.

        ``adapter`` must be one of ``self.adapters`` (the API refuses others with 422)."""
        generator = self.adapters[adapter] if adapter else self.pipeline
        model = self.model_for(adapter)
        started = time.perf_counter()
        ttft: float | None = None
        try:
            chunks = await run_in_threadpool(self.pipeline.retrieve, question)
            if not chunks:
                self.metrics.no_context.inc()
                ttft = time.perf_counter() - started
                yield Token(NO_CONTEXT_ANSWER)
                answer = Answer(NO_CONTEXT_ANSWER, [], model=model)
            else:
                merged: AIMessageChunk | None = None
                async for chunk in generator.astream(question, chunks, history):
                    if ttft is None:
                        ttft = time.perf_counter() - started
                    merged = chunk if merged is None else merged + chunk
                    if chunk.content:
                        yield Token(str(chunk.content))
                answer = self._finish(merged, chunks, model)
        except openai.APITimeoutError as exc:
            self._record(started, ttft, None, "timeout", adapter)
            raise LLMTimeout(str(exc)) from exc
        except (openai.APIError, OSError) as exc:
            self._record(started, ttft, None, "error", adapter)
            raise LLMUnavailable(str(exc)) from exc
        self._record(started, ttft, answer, "success", adapter)
        yield answer

    async def answer(
        self, question: str, history: Sequence[BaseMessage] = (), adapter: str | None = None
    ) -> Answer:
        result: Answer | None = None
        async for item in self.stream(question, history, adapter):
            if isinstance(item, Answer):
                result = item
        assert result is not None
        return result

    def _finish(self, merged: AIMessageChunk | None, chunks, model: str) -> Answer:
        text = str(merged.content) if merged is not None else ""
        usage = merged.usage_metadata if merged is not None else None
        served = (merged.response_metadata or {}).get("model_name") if merged else None
        answer = Answer(text, chunks, model=served or model, called_llm=True)
        if usage:
            answer.prompt_tokens = usage["input_tokens"]
            answer.completion_tokens = usage["output_tokens"]
        else:
            # Some servers send no usage when streaming; count roughly rather than zero.
            answer.usage_reported = False
            context = " ".join(c.document.page_content for c in chunks)
            answer.prompt_tokens = estimate_tokens(context)
            answer.completion_tokens = estimate_tokens(text)
        return answer

    def _record(
        self,
        started: float,
        ttft: float | None,
        answer: Answer | None,
        outcome: str,
        adapter: str | None = None,
    ) -> None:
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(outcome=outcome).inc()
        self.metrics.request_latency.observe(elapsed)
        if ttft is not None:
            self.metrics.ttft.observe(ttft)
        prompt_tokens = answer.prompt_tokens if answer else 0
        completion_tokens = answer.completion_tokens if answer else 0
        self.metrics.prompt_tokens.inc(prompt_tokens)
        self.metrics.completion_tokens.inc(completion_tokens)
        if answer is not None:
            answer.extra["latency_ms"] = round(elapsed * 1000, 2)
        if self.usage is not None:
            self.usage.record(
                {
                    "service": self.service,
                    "timestamp": datetime.now(UTC).isoformat(),
                    "latency_ms": round(elapsed * 1000, 2),
                    "ttft_ms": round(ttft * 1000, 2) if ttft is not None else None,
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "outcome": outcome,
                    "model": answer.model if answer else self.model_for(adapter),
                    # None: the base model; the portal sums usage per adapter.
                    "adapter": adapter,
                }
            )
