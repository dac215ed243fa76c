"""A real Prometheus (Debian package) scrapes an exporter serving vLLM-named metrics; the
collector reads them through the HTTP API into rollups, across a counter reset."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from portal_backend.db import session_scope
from portal_backend.sla import prometheus, stats
from portal_backend.sla.tables import SlaService
from tests.conftest import free_port
from tests.sla.conftest import rag_service, register

BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 20.0)


class VllmMetrics:
    """vLLM's metric names, in a registry of their own (a process restart = a new one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds", "e2e", registry=self.registry, buckets=BUCKETS
        )
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "ttft", registry=self.registry, buckets=BUCKETS
        )
        self.success = Counter(
            "vllm:request_success", "finished", ["finished_reason"], registry=self.registry
        )
        self.prompt = Counter("vllm:prompt_tokens", "prompt", registry=self.registry)
        self.generation = Counter("vllm:generation_tokens", "gen", registry=self.registry)
        for reason in ("stop", "length", "abort"):
            self.success.labels(reason)  # series exist from zero, as in vLLM

    def serve(self, latency_s: float, reason: str, prompt: int, generated: int) -> None:
        self.e2e.observe(latency_s)
        self.ttft.observe(latency_s / 5)
        self.success.labels(reason).inc()
        self.prompt.inc(prompt)
        self.generation.inc(generated)


class RagApiMetrics:
    """The generated RAG API's own metrics (what users see, outcome by outcome)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "rag_request_latency_seconds", "latency", registry=self.registry, buckets=BUCKETS
        )
        self.ttft = Histogram(
            "rag_time_to_first_token_seconds", "ttft", registry=self.registry, buckets=BUCKETS
        )
        self.requests = Counter("rag_requests", "requests", ["outcome"], registry=self.registry)
        self.prompt = Counter("rag_prompt_tokens", "prompt", registry=self.registry)
        self.completion = Counter("rag_completion_tokens", "completion", registry=self.registry)
        for outcome in ("success", "error", "timeout", "refused"):
            self.requests.labels(outcome)

    def serve(self, latency_s: float, outcome: str, prompt: int, completion: int) -> None:
        self.latency.observe(latency_s)
        self.ttft.observe(latency_s / 5)
        self.requests.labels(outcome).inc()
        self.prompt.inc(prompt)
        self.completion.inc(completion)


class Exporter:
    def __init__(self) -> None:
        self.metrics = VllmMetrics()
        self.rag: RagApiMetrics | None = None
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = generate_latest(exporter.metrics.registry)
                if exporter.rag is not None:
                    body += generate_latest(exporter.rag.registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def restart(self) -> None:
        self.metrics = VllmMetrics()  # counters start again from zero


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    exp = Exporter()
    yield exp
    exp.server.shutdown()


@pytest.fixture
def prometheus_url(tmp_path: Path, exporter: Exporter) -> Iterator[str]:
    binary = shutil.which("prometheus")
    assert binary, "Debian package prometheus missing: run scripts/setup.d/20-prometheus.sh"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: vllm\n"
        "    scrape_interval: 1s\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter.port}']\n"
        "        labels: {namespace: bot}\n"
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def _wait_for(url: str, expr: str, expected: float) -> None:
    """Until Prometheus's latest scrape shows ``expr == expected``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        result = httpx.get(f"{url}/api/v1/query", params={"query": expr}).json()["data"]["result"]
        if result and float(result[0]["value"][1]) == expected:
            return
        time.sleep(0.25)
    raise AssertionError(f"Prometheus never showed {expr} == {expected}")


def _collect(factory, url: str) -> int:  # type: ignore[no-untyped-def]
    with session_scope(factory) as session, httpx.Client(timeout=10) as client:
        service = session.get(SlaService, "component:default/bot")
        return prometheus.collect_service(
            session, client, url, service, 'namespace="{namespace}"', datetime.now(UTC), lag_s=0
        )


def _totals(factory):  # type: ignore[no-untyped-def]
    end = int(time.time()) + 120
    with session_scope(factory) as session:
        return stats.window_stats(session, "component:default/bot", end - 3600, end)


def test_vllm_metrics_through_prometheus_with_counter_reset(  # type: ignore[no-untyped-def]
    session_factory, exporter: Exporter, prometheus_url: str
) -> None:
    register(session_factory, rag_service("bot"))
    total = 'sum(vllm:request_success_total{namespace="bot"})'
    _wait_for(prometheus_url, total, 0)  # the zero state is scraped first

    # Before the restart: 30 fast stops, 10 slow length-limited, 5 aborted.
    for _ in range(30):
        exporter.metrics.serve(0.4, "stop", 100, 20)
    for _ in range(10):
        exporter.metrics.serve(3.0, "length", 100, 512)
    for _ in range(5):
        exporter.metrics.serve(1.2, "abort", 100, 3)
    _wait_for(prometheus_url, total, 45)
    assert _collect(session_factory, prometheus_url) == 45
    first = _totals(session_factory)
    assert (first.requests, first.successes, first.errors) == (45, 40, 5)
    assert first.prompt_tokens == 4500
    assert first.completion_tokens == 30 * 20 + 10 * 512 + 5 * 3
    assert int(first.latency.sum()) == 45 and int(first.ttft.sum()) == 45
    # Median is a 0.4 s request: within its Prometheus bucket (0.3, 0.5].
    assert 300 <= first.latency_quantile(0.5) <= 500
    assert first.latency_sum_ms == pytest.approx(1000 * (30 * 0.4 + 10 * 3.0 + 5 * 1.2))
    assert _collect(session_factory, prometheus_url) == 0  # nothing new, nothing counted

    # vLLM restarts: every counter starts again below its last value.
    exporter.restart()
    for _ in range(12):
        exporter.metrics.serve(0.6, "stop", 50, 10)
    _wait_for(prometheus_url, total, 12)
    assert _collect(session_factory, prometheus_url) == 12
    after = _totals(session_factory)
    assert (after.requests, after.successes, after.errors) == (57, 52, 5)
    assert after.prompt_tokens == 4500 + 600
    assert after.completion_tokens == first.completion_tokens + 120
    assert int(after.latency.sum()) == 57


def test_rag_api_metrics_preferred_over_vllm(  # type: ignore[no-untyped-def]
    session_factory, exporter: Exporter, prometheus_url: str
) -> None:
    """Both the RAG API and vLLM export (same namespace): requests are counted once,
    from the RAG API, with its outcomes (timeouts and refusals are not errors)."""
    register(session_factory, rag_service("bot"))
    exporter.rag = RagApiMetrics()
    _wait_for(prometheus_url, 'sum(rag_requests_total{namespace="bot"})', 0)
    for _ in range(20):
        exporter.rag.serve(0.9, "success", 300, 60)
        exporter.metrics.serve(0.7, "stop", 300, 60)
    for outcome in ("timeout", "timeout", "timeout", "refused", "refused", "error"):
        exporter.rag.serve(5.0, outcome, 300, 0)
    _wait_for(prometheus_url, 'sum(rag_requests_total{namespace="bot"})', 26)
    _wait_for(prometheus_url, 'sum(vllm:request_success_total{namespace="bot"})', 20)
    assert _collect(session_factory, prometheus_url) == 26
    totals = _totals(session_factory)
    assert (totals.requests, totals.successes) == (26, 20)
    assert (totals.timeouts, totals.refused, totals.errors) == (3, 2, 1)
    assert totals.prompt_tokens == 26 * 300 and totals.completion_tokens == 20 * 60
    assert int(totals.latency.sum()) == 26
    assert 4000 <= totals.latency_quantile(0.99) <= 5000  # in the (2.5 s, 5 s] bucket
