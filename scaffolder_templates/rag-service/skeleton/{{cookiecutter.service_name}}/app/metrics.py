"""Prometheus metrics of the RAG API. The names are a contract: rag-portal's SLA
collector and the generated dashboards and alert rules read them.

- rag_request_latency_seconds            histogram, end-to-end latency of answered requests
- rag_time_to_first_token_seconds        histogram, request start to first answer token
- rag_prompt_tokens_total                counter, prompt tokens sent to the LLM
- rag_completion_tokens_total            counter, completion tokens received
- rag_requests_total{outcome}            counter, outcome = success | error | timeout | refused
- rag_no_context_answers_total           counter, "I don't know" answers given without the LLM

"refused" counts requests rejected as invalid (422); a grounded "I don't know" is a
success. The latency buckets include the SLO target
({{ cookiecutter.slo_p95_latency_ms }} ms), so the latency SLI is an exact bucket.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

SLO_P95_LATENCY_SECONDS = {{ cookiecutter.slo_p95_latency_ms }} / 1000
OUTCOMES = ("success", "error", "timeout", "refused")
_BASE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
LATENCY_BUCKETS = tuple(sorted({*_BASE_BUCKETS, SLO_P95_LATENCY_SECONDS}))
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class ServiceMetrics:
    """One registry per app instance, so tests can build many apps in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_latency = Histogram(
            "rag_request_latency_seconds",
            "End-to-end latency of RAG requests.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "rag_time_to_first_token_seconds",
            "Time from request start to the first answer token.",
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "rag_prompt_tokens_total", "Prompt tokens sent to the LLM.", registry=self.registry
        )
        self.completion_tokens = Counter(
            "rag_completion_tokens_total",
            "Completion tokens received from the LLM.",
            registry=self.registry,
        )
        self.requests = Counter(
            "rag_requests_total",
            "RAG requests by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.requests.labels(outcome=outcome)
        self.no_context = Counter(
            "rag_no_context_answers_total",
            "Answers given without calling the LLM because no chunk was relevant.",
            registry=self.registry,
        )
