"""Task, step and event rows: every state change is one short transaction.

Workers race each other (duplicate queue messages, a redelivered message after a crash),
so every transition that must happen once is a conditional UPDATE whose row count says
who won.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from portal_backend.db import session_scope
from portal_backend.scaffolder.tables import ScaffolderEvent, ScaffolderStep, ScaffolderTask

TERMINAL = ("completed", "failed", "cancelled")
DONE_STEP = ("completed", "skipped")


def now() -> datetime:
    return datetime.now(UTC)


def _update_if(
    session: Session,
    model: type[ScaffolderTask] | type[ScaffolderStep],
    *where: ColumnElement[bool],
    **values: Any,
) -> bool:
    """One conditional UPDATE of one row; True when it changed the row, i.e. when this
    caller won the race the conditions decide."""
    # An UPDATE's result is a CursorResult (Session.execute is typed for any statement).
    result = cast(CursorResult[Any], session.execute(update(model).where(*where).values(**values)))
    return result.rowcount == 1


def _step(task_id: str, step_id: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return ScaffolderStep.task_id == task_id, ScaffolderStep.step_id == step_id


def create_task(
    session: Session,
    *,
    template_ref: str,
    spec: dict[str, Any],
    values: dict[str, Any],
    secrets: dict[str, Any] | None,
    created_by: str,
) -> ScaffolderTask:
    at = now()
    task = ScaffolderTask(
        id=str(uuid.uuid4()),
        template_ref=template_ref,
        spec=spec,
        values=values,
        secrets=secrets or None,
        created_by=created_by,
        status="open",
        cancel_requested=False,
        created_at=at,
        updated_at=at,
    )
    session.add(task)
    session.flush()
    for position, step in enumerate(spec["steps"]):
        session.add(
            ScaffolderStep(
                task_id=task.id,
                step_id=str(step["id"]),
                position=position,
                name=str(step.get("name") or step["id"]),
                action=str(step["action"]),
                status="open",
            )
        )
    return task


def add_event(
    factory: sessionmaker[Session], task_id: str, type_: str, body: dict[str, Any]
) -> None:
    with session_scope(factory) as session:
        session.add(ScaffolderEvent(task_id=task_id, type=type_, body=body, created_at=now()))


def get_task(session: Session, task_id: str) -> ScaffolderTask | None:
    return session.get(ScaffolderTask, task_id)


def get_steps(session: Session, task_id: str) -> list[ScaffolderStep]:
    return list(
        session.scalars(
            select(ScaffolderStep)
            .where(ScaffolderStep.task_id == task_id)
            .order_by(ScaffolderStep.position)
        )
    )


def list_tasks(
    session: Session,
    *,
    created_by: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[ScaffolderTask], int]:
    query = select(ScaffolderTask)
    count = select(func.count()).select_from(ScaffolderTask)
    if created_by:
        query = query.where(ScaffolderTask.created_by == created_by)
        count = count.where(ScaffolderTask.created_by == created_by)
    if status:
        query = query.where(ScaffolderTask.status == status)
        count = count.where(ScaffolderTask.status == status)
    rows = session.scalars(
        query.order_by(ScaffolderTask.created_at.desc(), ScaffolderTask.id)
        .offset(offset)
        .limit(limit)
    )
    return list(rows), int(session.scalar(count) or 0)


def list_events(session: Session, task_id: str, after: int | None) -> list[ScaffolderEvent]:
    query = select(ScaffolderEvent).where(ScaffolderEvent.task_id == task_id)
    if after is not None:
        query = query.where(ScaffolderEvent.id > after)
    return list(session.scalars(query.order_by(ScaffolderEvent.id)))


def claim_step(
    factory: sessionmaker[Session], task_id: str, step_id: str, worker: str, stale_after_s: float
) -> str | None:
    """Take the step if it is open, or held by a worker whose heartbeat went silent."""
    claim = str(uuid.uuid4())
    at = now()
    with session_scope(factory) as session:
        claimed = _update_if(
            session,
            ScaffolderStep,
            *_step(task_id, step_id),
            or_(
                ScaffolderStep.status == "open",
                (ScaffolderStep.status == "processing")
                & (ScaffolderStep.heartbeat_at < at - timedelta(seconds=stale_after_s)),
            ),
            status="processing",
            claim=claim,
            worker=worker,
            heartbeat_at=at,
            started_at=at,
            attempts=ScaffolderStep.attempts + 1,
            error=None,
        )
        if not claimed:
            return None
        _update_if(
            session,
            ScaffolderTask,
            ScaffolderTask.id == task_id,
            ScaffolderTask.status == "open",
            status="processing",
            updated_at=at,
        )
    return claim


def heartbeat(
    factory: sessionmaker[Session], task_id: str, step_id: str, claim: str
) -> bool | None:
    """Refresh the step's heartbeat; returns the task's cancel flag, None if we lost the claim."""
    with session_scope(factory) as session:
        held = _update_if(
            session,
            ScaffolderStep,
            *_step(task_id, step_id),
            ScaffolderStep.claim == claim,
            heartbeat_at=now(),
        )
        if not held:
            return None
        task = session.get(ScaffolderTask, task_id)
        return bool(task and task.cancel_requested)


def finish_step(
    factory: sessionmaker[Session],
    task_id: str,
    step_id: str,
    claim: str,
    status: str,
    *,
    output: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    with session_scope(factory) as session:
        return _update_if(
            session,
            ScaffolderStep,
            *_step(task_id, step_id),
            ScaffolderStep.claim == claim,
            ScaffolderStep.status == "processing",
            status=status,
            output=output,
            error=error,
            finished_at=now(),
            claim=None,
        )


def finish_task(
    factory: sessionmaker[Session],
    task_id: str,
    status: str,
    *,
    output: dict[str, Any] | None = None,
    error: str | None = None,
    keep_secrets: bool = False,
    event: tuple[str, dict[str, Any]] | None = None,
) -> bool:
    """Move a live task to a terminal state, writing its final event in the same
    transaction (so whoever sees the state also sees the event); False when another
    worker already did."""
    at = now()
    values: dict[str, Any] = {"status": status, "updated_at": at, "completed_at": at}
    if output is not None:
        values["output"] = output
    if error is not None:
        values["error"] = error
    if not keep_secrets:
        values["secrets"] = None
    with session_scope(factory) as session:
        finished = _update_if(
            session,
            ScaffolderTask,
            ScaffolderTask.id == task_id,
            ScaffolderTask.status.in_(("open", "processing")),
            **values,
        )
        if finished and event is not None:
            session.add(
                ScaffolderEvent(task_id=task_id, type=event[0], body=event[1], created_at=at)
            )
        if finished and status == "cancelled":
            session.execute(
                update(ScaffolderStep)
                .where(ScaffolderStep.task_id == task_id, ScaffolderStep.status == "open")
                .values(status="cancelled")
            )
        return finished


def mark_dispatched(factory: sessionmaker[Session], task_id: str) -> None:
    with session_scope(factory) as session:
        session.execute(
            update(ScaffolderTask).where(ScaffolderTask.id == task_id).values(dispatched_at=now())
        )


def request_cancel(session: Session, task_id: str) -> None:
    session.execute(
        update(ScaffolderTask)
        .where(ScaffolderTask.id == task_id)
        .values(cancel_requested=True, updated_at=now())
    )


def reopen_for_retry(session: Session, task: ScaffolderTask) -> str | None:
    """Failed/cancelled steps and everything after them go back to open; completed steps
    keep their outputs. Returns the id of the step the task resumes at."""
    resume_at = None
    for step in get_steps(session, task.id):
        if step.status in DONE_STEP and resume_at is None:
            continue
        if resume_at is None:
            resume_at = step.step_id
        step.status, step.output, step.error, step.claim = "open", None, None, None
        step.finished_at = None
        session.add(step)
    task.status, task.cancel_requested, task.error, task.completed_at = "open", False, None, None
    task.updated_at = now()
    session.add(task)
    return resume_at


def stalled_tasks(
    session: Session, stale_after_s: float, requeue_after_s: float
) -> tuple[list[tuple[str, str]], list[str]]:
    """(task, step) pairs whose worker went silent, and live tasks nobody moved for a while."""
    at = now()
    dead = session.execute(
        select(ScaffolderStep.task_id, ScaffolderStep.step_id).where(
            ScaffolderStep.status == "processing",
            ScaffolderStep.heartbeat_at < at - timedelta(seconds=stale_after_s),
        )
    ).all()
    busy = select(ScaffolderStep.task_id).where(ScaffolderStep.status == "processing")
    idle = session.scalars(
        select(ScaffolderTask.id).where(
            ScaffolderTask.status.in_(("open", "processing")),
            or_(
                ScaffolderTask.dispatched_at.is_(None),
                ScaffolderTask.dispatched_at < at - timedelta(seconds=requeue_after_s),
            ),
            ScaffolderTask.updated_at < at - timedelta(seconds=requeue_after_s),
            ScaffolderTask.id.not_in(busy),
        )
    ).all()
    return [(t, s) for t, s in dead], list(idle)


def release_dead_step(
    factory: sessionmaker[Session], task_id: str, step_id: str, stale_after_s: float
) -> bool:
    """Give a dead worker's step back (open), unless its heartbeat came back meanwhile."""
    with session_scope(factory) as session:
        return _update_if(
            session,
            ScaffolderStep,
            *_step(task_id, step_id),
            ScaffolderStep.status == "processing",
            ScaffolderStep.heartbeat_at < now() - timedelta(seconds=stale_after_s),
            status="open",
            claim=None,
        )


def touch(factory: sessionmaker[Session], task_id: str) -> None:
    with session_scope(factory) as session:
        session.execute(
            update(ScaffolderTask).where(ScaffolderTask.id == task_id).values(updated_at=now())
        )


def ended_before(session: Session, task_ids: list[str], cutoff_epoch: float) -> set[str]:
    """Of these tasks, the failed or cancelled ones that ended before the cutoff."""
    cutoff = datetime.fromtimestamp(cutoff_epoch, UTC)
    rows = session.scalars(
        select(ScaffolderTask.id).where(
            ScaffolderTask.id.in_(task_ids),
            ScaffolderTask.status.in_(("failed", "cancelled", "completed")),
            ScaffolderTask.completed_at < cutoff,
        )
    )
    return set(rows)


def existing_ids(session: Session, task_ids: list[str]) -> set[str]:
    return set(session.scalars(select(ScaffolderTask.id).where(ScaffolderTask.id.in_(task_ids))))
