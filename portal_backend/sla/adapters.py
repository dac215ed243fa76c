"""Usage per LoRA adapter: pushed records that name an ``adapter`` are also summed per
(service, adapter, hour), so the service report can say what each adapter served.

A side table rather than a rollup key: most services have no adapters, and the rollups'
hot path (portal_backend.sla.ingest) stays as it is; a batch with no adapter record
writes nothing here. Upserts add to the row (``ON CONFLICT DO UPDATE SET x = x + ...``),
so concurrent batches for the same hour never lose counts; a retried batch is dropped
before this by its batch id.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal_backend.sla.rollups import HOUR, OUTCOMES, _insert
from portal_backend.sla.tables import AdapterUsage

if TYPE_CHECKING:
    from portal_backend.sla.ingest import ParsedBatch

A = AdapterUsage.__table__
_SUCCESS, _REFUSED = OUTCOMES.index("success"), OUTCOMES.index("refused")


def record_batch(session: Session, batch: ParsedBatch, service_map: dict[str, str]) -> int:
    """Adds the batch's adapter records to their hour rows; returns how many it counted."""
    rows: dict[tuple[str, str, int], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0, 0])
    counted = 0
    for index, adapter in enumerate(batch.adapter):
        if not adapter:
            continue
        counted += 1
        ts = float(batch.timestamp[index])
        key = (service_map[batch.service[index]], adapter, int(ts - ts % HOUR))
        row = rows[key]
        outcome = int(batch.outcome[index])
        row[0] += 1
        row[1] += outcome not in (_SUCCESS, _REFUSED)
        row[2] += float(batch.latency_ms[index])
        row[3] += int(batch.prompt_tokens[index])
        row[4] += int(batch.completion_tokens[index])
    if not rows:
        return 0
    statement = _insert(session)(A)
    statement = statement.on_conflict_do_update(
        index_elements=[A.c.service_ref, A.c.adapter, A.c.bucket_ts],
        set_={
            name: getattr(A.c, name) + getattr(statement.excluded, name)
            for name in (
                "requests",
                "errors",
                "latency_sum_ms",
                "prompt_tokens",
                "completion_tokens",
            )
        },
    )
    session.execute(
        statement,
        [
            {
                "service_ref": ref,
                "adapter": adapter,
                "bucket_ts": bucket,
                "requests": int(requests),
                "errors": int(errors),
                "latency_sum_ms": latency,
                "prompt_tokens": int(prompt),
                "completion_tokens": int(completion),
            }
            for (ref, adapter, bucket), (requests, errors, latency, prompt, completion) in sorted(
                rows.items()
            )
        ],
    )
    return counted


def usage_by_adapter(
    session: Session, service_ref: str, start: float, end: float
) -> list[dict[str, Any]]:
    """Each adapter's requests, errors, tokens and mean latency in [start, end) (whole
    hours overlapping the range), most requests first."""
    rows = session.execute(
        select(
            A.c.adapter,
            func.sum(A.c.requests),
            func.sum(A.c.errors),
            func.sum(A.c.latency_sum_ms),
            func.sum(A.c.prompt_tokens),
            func.sum(A.c.completion_tokens),
        )
        .where(
            A.c.service_ref == service_ref,
            A.c.bucket_ts >= int(start - start % HOUR),
            A.c.bucket_ts < end,
        )
        .group_by(A.c.adapter)
    )
    out: list[dict[str, Any]] = []
    for adapter, requests, errors, latency, prompt, completion in rows:
        requests = int(requests or 0)
        out.append(
            {
                "adapter": adapter,
                "requests": requests,
                "errors": int(errors or 0),
                "meanLatencyMs": round(float(latency or 0) / requests, 2) if requests else None,
                "promptTokens": int(prompt or 0),
                "completionTokens": int(completion or 0),
            }
        )
    return sorted(out, key=lambda r: (-r["requests"], r["adapter"]))
