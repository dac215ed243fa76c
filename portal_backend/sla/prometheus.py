"""Pull collector: a service's vLLM and RAG API metrics from a Prometheus HTTP API.

Raw samples are read with range selectors (``metric{sel}[Nms]`` at the cursor's end),
so every increase is seen exactly once: each sample is compared with the previous one
of its series (the last one is remembered between runs in ``sla_collector_cursors``)
and a drop is a counter reset, after which the new value itself is the increase. Each
increase lands in the minute of its sample, in rollups of source "prometheus".

Metric families: the RAG API's own metrics when the service exports them (they count
what users see), else vLLM's. Latency from Prometheus's coarse buckets is spread
evenly within each bucket, so its precision is that of the exporter's buckets.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import numpy as np
from sqlalchemy.orm import Session

from portal_backend.sla import histogram, rollups
from portal_backend.sla.tables import CollectorCursor, SlaService


@dataclass(frozen=True)
class Family:
    name: str
    requests: str
    outcome_label: str
    latency: str
    ttft: str
    prompt: str
    completion: str

    def outcome(self, value: str) -> str:
        if self.name == "vllm":  # stop and length are completed generations
            return "success" if value in ("stop", "length") else "error"
        return value if value in rollups.OUTCOMES else "error"


RAG = Family(
    "rag",
    "rag_requests_total",
    "outcome",
    "rag_request_latency_seconds",
    "rag_time_to_first_token_seconds",
    "rag_prompt_tokens_total",
    "rag_completion_tokens_total",
)
VLLM = Family(
    "vllm",
    "vllm:request_success_total",
    "finished_reason",
    "vllm:e2e_request_latency_seconds",
    "vllm:time_to_first_token_seconds",
    "vllm:prompt_tokens_total",
    "vllm:generation_tokens_total",
)


class PrometheusError(Exception):
    pass


def query_samples(
    client: httpx.Client, base_url: str, metric: str, selector: str, start: float, end: float
) -> list[dict[str, Any]]:
    """Raw samples of every series of ``metric`` in (start, end]."""
    range_ms = max(1, int(math.ceil((end - start) * 1000)))
    expr = f"{{__name__={metric!r},{selector}}}[{range_ms}ms]".replace("'", '"')
    try:
        response = client.get(
            f"{base_url.rstrip('/')}/api/v1/query", params={"query": expr, "time": f"{end:.3f}"}
        )
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise PrometheusError(f"{base_url}: {exc}") from exc
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(f"{base_url}: {body.get('error', response.status_code)}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _series_key(metric: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(metric.items()))


def increases(
    result: list[dict[str, Any]], last: dict[str, list[float]]
) -> list[tuple[dict[str, str], float, float]]:
    """(labels, sample ts, increase) for every sample after the first one of a series."""
    out = []
    for series in result:
        key = _series_key(series["metric"])
        previous = last.get(key)
        for ts, raw in series["values"]:
            value = float(raw)
            if previous is not None and ts > previous[0]:
                delta = value - previous[1] if value >= previous[1] else value  # reset
                if delta > 0:
                    out.append((series["metric"], float(ts), delta))
            if previous is None or ts > previous[0]:
                previous = [float(ts), value]
        if previous is not None:
            last[key] = previous
    return out


def _minute(ts: float) -> int:
    return int(ts - ts % 60)


def _bucket_counts(
    items: list[tuple[dict[str, str], float, float]],
) -> dict[int, np.ndarray]:
    """Per minute: dense histogram from cumulative ``le`` bucket increases."""
    per_minute: dict[int, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for labels, ts, delta in items:
        le = labels.get("le")
        if le is None:
            continue
        per_minute[_minute(ts)][float(le)] += delta
    out = {}
    for minute, cumulative in per_minute.items():
        bounds = sorted(cumulative)
        coarse, lower, below = [], 0.0, 0.0
        for upper in bounds:
            count = int(round(cumulative[upper] - below))
            coarse.append((lower * 1000, upper * 1000, max(count, 0)))
            below = max(below, cumulative[upper])
            lower = upper
        out[minute] = histogram.spread(coarse)
    return out


def collect_service(
    session: Session,
    client: httpx.Client,
    base_url: str,
    service: SlaService,
    selector_template: str,
    now: datetime,
    *,
    lag_s: float = 15.0,
    first_lookback_s: float = 600.0,
    max_range_s: float = 3600.0,
) -> int:
    """Reads the service's new samples into rollups; returns the requests it added."""
    cursor = session.get(CollectorCursor, service.service_ref)
    end = now.timestamp() - lag_s
    if cursor is None:
        cursor = CollectorCursor(
            service_ref=service.service_ref, cursor_ts=end - first_lookback_s, last_values={}
        )
        session.add(cursor)
    start = max(cursor.cursor_ts, end - max_range_s)
    if end <= start:
        return 0
    name = service.service_ref.split("/")[-1]
    selector = selector_template.format(namespace=service.namespace or name, service=name)
    last = dict(cursor.last_values or {})

    def fetch(metric: str) -> list[tuple[dict[str, str], float, float]]:
        return increases(query_samples(client, base_url, metric, selector, start, end), last)

    rag_requests = query_samples(client, base_url, RAG.requests, selector, start, end)
    seen_rag = any(k.startswith(f"__name__={RAG.requests}") for k in last)
    family = RAG if rag_requests or seen_rag else VLLM
    request_items = increases(
        rag_requests
        if family is RAG
        else query_samples(client, base_url, VLLM.requests, selector, start, end),
        last,
    )
    deltas: dict[int, rollups.RollupDelta] = defaultdict(rollups.RollupDelta)
    for labels, ts, delta in request_items:
        d = deltas[_minute(ts)]
        count = int(round(delta))
        outcome = family.outcome(labels.get(family.outcome_label, ""))
        d.requests += count
        if outcome == "success":
            d.successes += count
        elif outcome == "timeout":
            d.timeouts += count
        elif outcome == "refused":
            d.refused += count
        else:
            d.errors += count
    for _labels, ts, delta in fetch(family.prompt):
        deltas[_minute(ts)].prompt_tokens += int(round(delta))
    for _labels, ts, delta in fetch(family.completion):
        deltas[_minute(ts)].completion_tokens += int(round(delta))
    for _labels, ts, delta in fetch(family.latency + "_sum"):
        deltas[_minute(ts)].latency_sum_ms += delta * 1000
    for minute, counts in _bucket_counts(fetch(family.latency + "_bucket")).items():
        deltas[minute].latency = deltas[minute].latency + counts
    for minute, counts in _bucket_counts(fetch(family.ttft + "_bucket")).items():
        deltas[minute].ttft = deltas[minute].ttft + counts

    keyed = {(service.service_ref, "1m", m, "prometheus"): d for m, d in deltas.items()}
    rollups.apply_deltas(session, rollups.with_hours(keyed))
    cursor.cursor_ts = end
    cursor.last_values = last
    session.flush()
    return sum(d.requests for d in deltas.values())


def prometheus_url(urls: dict[str, str], cluster: str | None) -> str | None:
    return urls.get(cluster or "default") or urls.get("default")
