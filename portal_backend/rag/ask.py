"""Asking a running RAG service a question from the portal (the entity page's Ask panel,
``ragportal services ask``, the API).

The question goes to the service's own ``POST /query``, so it is answered, measured and
pushed as usage exactly like any client's request: it counts in the service's SLA.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import (
    ConflictError,
    ErrorDetail,
    InputError,
    NotFoundError,
    ServiceUnavailableError,
)
from portal_backend.db import session_scope
from portal_backend.provisioning.models import ProvisionedService

MAX_QUESTION_CHARS = 4000


def endpoint_of(session: Session, service: str) -> str:
    row = session.get(ProvisionedService, service)
    if row is None:
        raise NotFoundError(f"RAG service {service} was never deployed: deploy it first")
    if not row.endpoint:
        raise ConflictError(
            f"{service} has no endpoint the portal can reach (state {row.state}"
            + (", a plan only" if row.state == "Planned" else "")
            + "): deploy it to the local runtime or a cluster first"
        )
    if row.state not in ("Healthy", "Degraded"):
        raise ConflictError(f"{service} is {row.state}: ask again once it is Healthy")
    return row.endpoint


def ask(
    session_factory: sessionmaker[Session],
    service: str,
    question: str,
    *,
    adapter: str | None = None,
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """The service's answer: text, citations, token usage, latency, and its cost at the
    service's cost per 1k tokens (30 days)."""
    question = question.strip()
    if not question:
        raise InputError("the question is empty", [ErrorDetail("question", "type a question")])
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(
            f"the question is {len(question)} characters; at most {MAX_QUESTION_CHARS}",
            [ErrorDetail("question", "shorten it")],
        )
    with session_scope(session_factory) as session:
        endpoint = endpoint_of(session, service)
    body: dict[str, Any] = {"question": question}
    if adapter:
        body["adapter"] = adapter
    try:
        response = httpx.post(f"{endpoint}/query", json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(
            f"{service} did not answer at {endpoint}: {exc.__class__.__name__}"
        ) from exc
    if response.status_code == 422:
        raise InputError(f"{service} refused the question", _service_details(response))
    if response.status_code >= 400:
        raise ServiceUnavailableError(
            f"{service} answered {response.status_code}: {_detail_text(response)}"
        )
    answer: dict[str, Any] = response.json()
    usage = answer.get("usage") or {}
    tokens = int(usage.get("total_tokens") or 0)
    with session_scope(session_factory) as session:
        per_1k = _per_1k_tokens(session, service)
    answer["costUsd"] = round(tokens / 1000 * per_1k, 6) if per_1k is not None else None
    answer["per1kTokensUsd"] = per_1k
    answer["service"] = service
    answer["endpoint"] = endpoint
    return answer


def _service_details(response: httpx.Response) -> list[ErrorDetail]:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return [ErrorDetail("question", response.text[:300])]
    if isinstance(detail, list):
        return [
            ErrorDetail(".".join(str(p) for p in d.get("loc", [])[1:]) or "question", d["msg"])
            for d in detail
            if isinstance(d, dict) and "msg" in d
        ]
    return [ErrorDetail("question", str(detail))]


def _detail_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))[:500]
    except ValueError:
        return response.text[:500]


def _per_1k_tokens(session: Session, service: str) -> float | None:
    from portal_backend.sla import reports
    from portal_backend.sla.clock import utcnow
    from portal_backend.sla.tables import SlaService

    row = session.get(ProvisionedService, service)
    ref = (row.entity_ref if row is not None else None) or f"component:default/{service}"
    sla_service = session.get(SlaService, ref.lower())
    if sla_service is None:
        return None
    report = reports.service_report(session, sla_service, "30d", utcnow())
    value = (report.get("cost") or {}).get("per1kTokensUsd")
    return float(value) if value is not None else None
