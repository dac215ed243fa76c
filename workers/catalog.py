"""Celery tasks and the beat entry of the catalog's background refresh (work in catalog.refresh).

Every ``catalog_refresh_interval_s`` (0 = off) beat sends ``catalog.refresh_due``, which
sends one ``catalog.refresh_location`` per location not refreshed for that long and not
being refreshed now. Messages expire after one interval, so a backlog never piles up
behind slow workers; the per-location claim keeps two refreshes of a location apart.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import structlog
from celery import Celery, Task

from catalog import refresh
from portal_backend.catalog_policy import location_policy
from portal_backend.settings import Settings
from workers.low_priority import run_at_lower_priority
from workers.sessions import process_session_factory

# Background work: behind the scaffolder's next steps (0) on the shared queue, like its
# new tasks (Redis priority queues; 9 is the lowest).
BACKGROUND_PRIORITY = 9
REFRESH_DUE = "catalog.refresh_due"
REFRESH_LOCATION = "catalog.refresh_location"
# A refresh that found every slot taken is retried after this many seconds (a range, so
# the waiting ones do not all come back at once).
DEFER_S = (2.0, 6.0)

log = structlog.get_logger(__name__)


def background_refresh(
    settings: Settings, location_id: str, *, unless_refreshed_since: datetime | None = None
) -> refresh.RefreshOutcome:
    """What a worker does for one due location: the claimed refresh, in one of the
    ``catalog_refresh_concurrency`` slots (state "deferred" when none is free) and at the
    lower CPU priority of ``catalog_refresh_niceness``, so that reads served beside
    background refreshes stay fast: on 2 cores, two refreshes at once made the by-query
    p95 1.85-2.5x its idle value, one 1.2-1.4x."""
    factory = process_session_factory(settings)
    with refresh.refresh_slot(factory, settings.catalog_refresh_concurrency) as slot:
        if slot is None:
            return refresh.RefreshOutcome(location_id, "deferred")
        return run_at_lower_priority(
            settings.catalog_refresh_niceness,
            refresh.refresh_claimed,
            factory,
            location_id,
            location_policy(settings),
            unless_refreshed_since=unless_refreshed_since,
        )


def register(app: Celery) -> None:
    settings: Settings = app.conf.ragportal_settings
    interval = settings.catalog_refresh_interval_s

    @app.task(name=REFRESH_LOCATION, ignore_result=True, bind=True, max_retries=None)
    def refresh_location(self: Task, location_id: str, due_before: str | None = None) -> dict:
        # due_before: the location was found due because it was not refreshed since then;
        # if it was refreshed after it (by the API, or a twin message), nothing to do.
        outcome = background_refresh(
            settings,
            location_id,
            unless_refreshed_since=datetime.fromisoformat(due_before) if due_before else None,
        )
        if outcome.state == "deferred":
            # Every slot is busy: try again shortly, as a new message (the retry keeps the
            # original expiry, so a backlog still never outlives one interval).
            raise self.retry(countdown=random.uniform(*DEFER_S))
        log.info(
            "catalog.location_refreshed",
            location_id=location_id,
            state=outcome.state,
            entities=len(outcome.entities),
            orphaned=len(outcome.orphaned),
            error=outcome.error.message if outcome.error else None,
        )
        return {"state": outcome.state, "orphaned": outcome.orphaned}

    @app.task(name=REFRESH_DUE, ignore_result=True)
    def refresh_due() -> dict:
        now = datetime.now(UTC)
        with process_session_factory(settings).begin() as session:
            due = refresh.due_locations(session, interval, now)
        cutoff = (now - timedelta(seconds=interval)).isoformat()
        for location_id in due:
            refresh_location.apply_async(
                (location_id, cutoff), expires=max(interval, 1.0), priority=BACKGROUND_PRIORITY
            )
        return {"sent": len(due)}

    if interval > 0:
        # Checked four times per interval, so a location is refreshed every interval to
        # 1.25 intervals (a tick right after its refresh finds it not yet due).
        every = max(interval / 4, 1.0)
        app.conf.beat_schedule["catalog-refresh"] = {
            "task": REFRESH_DUE,
            "schedule": every,
            "options": {"expires": every, "priority": BACKGROUND_PRIORITY},
        }
