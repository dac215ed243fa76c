"""Celery task and beat entry of the scorecards (work in portal_backend.scorecards)."""

from __future__ import annotations

from typing import Any

from celery import Celery

from portal_backend.scorecards import service
from portal_backend.settings import Settings
from portal_backend.sla.clock import utcnow
from workers.sessions import process_session_factory

COMPUTE = "scorecards.compute"


def register(app: Celery) -> None:
    settings: Settings = app.conf.ragportal_settings

    @app.task(name=COMPUTE, ignore_result=True)
    def compute() -> dict[str, Any]:
        return service.run(settings, process_session_factory(settings), utcnow())

    every = settings.scorecard_interval_s
    app.conf.beat_schedule["scorecards-compute"] = {
        "task": COMPUTE,
        "schedule": every,
        "options": {"expires": every * 2},
    }
