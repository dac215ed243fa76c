"""Refreshing registered locations, one refresh per location at a time.

A refresh takes the location's lock without waiting, then re-reads and writes in one
transaction, then lets go of the lock after the commit: on PostgreSQL a session advisory
lock on a connection of its own (released explicitly, or by the server when the
connection dies -- on every machine running workers); on SQLite, whose deployments are one
machine, an exclusive ``flock`` on a file next to the database (released when the file is
closed or the process dies). A refresh that finds the lock taken is skipped (the
background refresh) or refused with 409 (``POST /refresh``) instead of queueing.

The outcome is recorded on the location afterwards, in a transaction of its own, so a
failed refresh (which leaves the entities as they were) still records its error:
``refreshed_at`` is when the last attempt finished, ``last_error`` its error or None.

Plain functions over a SQLAlchemy session factory: the Celery task and the HTTP route
call them; tests can too.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import ConflictError, PortalError
from catalog.location_registry import LocationRegistry
from catalog.locations import LocationPolicy
from catalog.tables import CatalogLocation

ERROR_LIMIT = 2000
# Advisory lock keys are one bigint space per database; this prefix keeps ours apart.
_LOCK_NAMESPACE = "rag-portal:catalog-location:"
_SLOT_PREFIX = "background-refresh-slot-"  # location ids are UUIDs: no clash
_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


@dataclass
class RefreshOutcome:
    location_id: str
    # "refreshed", "failed", "busy" (another refresh holds the lock), "missing" (deleted),
    # "fresh" (refreshed by someone else since it was found due) or "deferred" (every
    # background-refresh slot was taken; see refresh_slot).
    state: str
    entities: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    error: PortalError | None = None


@contextmanager
def location_lock(factory: sessionmaker[Session], location_id: str) -> Iterator[bool]:
    """True while this caller holds the location's refresh lock; False if another does.

    Held around a whole refresh transaction, so a second refresh never reads the rows
    before the first one's commit.
    """
    engine = factory.kw["bind"]
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            # Advisory locks are one key space per database: the key names the schema
            # too, so portals (and test runs) in other schemas of it never share one.
            key, held = connection.execute(
                text(
                    "SELECT lock.key, pg_try_advisory_lock(lock.key) FROM (SELECT "
                    "hashtextextended(current_schema() || :name, 0) AS key) AS lock"
                ),
                {"name": ":" + _LOCK_NAMESPACE + location_id},
            ).one()
            connection.commit()
            try:
                yield held
            finally:
                if held:
                    connection.scalar(select(func.pg_advisory_unlock(key)))
                    connection.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        with _local_guard:
            lock = _local_locks.setdefault(location_id, threading.Lock())
        if not lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
        return
    # flock: exclusive between open files, so two threads of one process exclude each
    # other as well as two processes.
    folder = Path(f"{database}.location-locks")
    folder.mkdir(exist_ok=True)
    fd = os.open(folder / f"{location_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the file releases the lock


@contextmanager
def refresh_slot(factory: sessionmaker[Session], slots: int) -> Iterator[int | None]:
    """One of ``slots`` background-refresh slots shared by every worker on the database
    (the index held while the block runs), or None when all are taken.

    Taken without waiting, with the same locks as a location (advisory locks on
    PostgreSQL, ``flock`` files on SQLite) under names no location id can have.
    """
    for index in range(slots):
        with location_lock(factory, f"{_SLOT_PREFIX}{index}") as held:
            if held:
                yield index
                return
    yield None


def _record(factory: sessionmaker[Session], location_id: str, error: str | None) -> None:
    with factory.begin() as session:
        session.execute(
            update(CatalogLocation)
            .where(CatalogLocation.id == location_id)
            .values(
                refreshed_at=datetime.now(UTC),
                last_error=error[:ERROR_LIMIT] if error else None,
            )
        )


def refresh_claimed(
    factory: sessionmaker[Session],
    location_id: str,
    policy: LocationPolicy,
    *,
    unless_refreshed_since: datetime | None = None,
) -> RefreshOutcome:
    """Refresh one location under its lock and record the outcome.

    ``unless_refreshed_since``: skip ("fresh") when the location was refreshed after this
    time, checked once the lock is held (the background refresh passes its due time).
    """
    try:
        with location_lock(factory, location_id) as held, factory.begin() as session:
            if not held:
                return RefreshOutcome(location_id, "busy")
            location = session.get(CatalogLocation, location_id)
            if location is None:
                return RefreshOutcome(location_id, "missing")
            last = location.refreshed_at
            if last is not None and last.tzinfo is None:
                last = last.replace(tzinfo=UTC)  # SQLite returns naive UTC
            if unless_refreshed_since and last and last > unless_refreshed_since:
                return RefreshOutcome(location_id, "fresh")
            result = LocationRegistry(session, policy=policy).refresh_location(location_id)
    except PortalError as exc:
        # The refresh rolled back: the entities stay as they were; the error is recorded.
        _record(factory, location_id, f"{exc.name}: {exc.message}")
        return RefreshOutcome(location_id, "failed", error=exc)
    except Exception as exc:
        _record(factory, location_id, f"{type(exc).__name__}: {exc}")
        raise
    return RefreshOutcome(location_id, "refreshed", result["entities"], result["orphaned"])


def refresh_or_raise(
    factory: sessionmaker[Session], location_id: str, policy: LocationPolicy
) -> RefreshOutcome:
    """``refresh_claimed`` for a caller that answers with an error (the HTTP API)."""
    outcome = refresh_claimed(factory, location_id, policy)
    if outcome.state == "busy":
        raise ConflictError(
            f"location {location_id} is being refreshed right now; try again when it finishes"
        )
    if outcome.error is not None:
        raise outcome.error
    return outcome


def due_locations(session: Session, interval_s: float, now: datetime) -> list[str]:
    """Ids of the locations not refreshed for ``interval_s``, least recently refreshed first."""
    due = now - timedelta(seconds=interval_s)
    rows = session.scalars(
        select(CatalogLocation.id)
        .where(or_(CatalogLocation.refreshed_at.is_(None), CatalogLocation.refreshed_at <= due))
        .order_by(CatalogLocation.refreshed_at, CatalogLocation.id)
    )
    return list(rows)
