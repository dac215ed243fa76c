"""Evaluation results (the generated repo's ``make eval`` JSON) as a time series."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.errors import ErrorDetail, InputError
from portal_backend.sla.tables import Evaluation

RATE_METRICS = ("hit_at_k", "mrr", "hallucination_rate")


def record_evaluation(
    session: Session,
    service_ref: str,
    body: Any,
    now: datetime,
    submitted_by: str | None,
) -> Evaluation:
    """Keeps the numeric top-level metrics of an eval result (per-question rows dropped)."""
    if not isinstance(body, dict):
        raise InputError("the evaluation must be a JSON object like {'hit_at_k': 0.8, ...}")
    source = body.get("metrics", body)
    if not isinstance(source, dict):
        raise InputError("metrics must be an object", [ErrorDetail("metrics", "expected object")])
    metrics: dict[str, float | int | None] = {}
    problems = []
    for key, value in source.items():
        if isinstance(value, bool) or not isinstance(value, int | float | type(None)):
            continue
        if key in RATE_METRICS and value is not None and not 0 <= value <= 1:
            problems.append(ErrorDetail(f"metrics.{key}", "must be between 0 and 1"))
        metrics[key] = value
    if problems:
        raise InputError("invalid evaluation metrics", problems)
    if not any(v is not None for v in metrics.values()):
        raise InputError(
            "the evaluation has no numeric metric; post the JSON `make eval` writes "
            "(hit_at_k, mrr, hallucination_rate, ...)",
            [ErrorDetail("metrics", "no numeric metric found")],
        )
    dataset = body.get("dataset")
    evaluation = Evaluation(
        service_ref=service_ref,
        created_at=now,
        metrics=metrics,
        dataset=str(dataset)[:255] if dataset else None,
        submitted_by=submitted_by,
    )
    session.add(evaluation)
    session.flush()
    return evaluation


def list_evaluations(session: Session, service_ref: str, limit: int = 100) -> list[Evaluation]:
    return list(
        session.scalars(
            select(Evaluation)
            .where(Evaluation.service_ref == service_ref)
            .order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
            .limit(limit)
        )
    )
