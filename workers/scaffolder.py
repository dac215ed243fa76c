"""Celery tasks of the scaffolder: one message runs one step; beat runs the recovery sweep.

The engine does the work (``portal_backend.scaffolder.engine``); this module only binds
it to Celery: a per-process database engine, the dispatcher, and the beat entry.
"""

from __future__ import annotations

import os
import socket

from celery import Celery

from portal_backend.scaffolder import engine
from portal_backend.settings import Settings
from workers.sessions import process_session_factory

RUN_STEP = "scaffolder.run_step"
SWEEP = "scaffolder.sweep"


# Redis serves lower numbers first. The next step of a running task goes ahead of new
# submissions, so under a burst tasks finish one after another instead of all at the end.
NEXT_STEP_PRIORITY = 0
NEW_TASK_PRIORITY = 9


def dispatcher(app: Celery, priority: int = NEXT_STEP_PRIORITY) -> engine.Dispatch:
    queue = app.conf.task_default_queue

    def dispatch(task_id: str) -> None:
        app.send_task(RUN_STEP, args=[task_id], queue=queue, priority=priority)

    return dispatch


def register(app: Celery) -> None:
    settings: Settings = app.conf.ragportal_settings
    dispatch = dispatcher(app)

    @app.task(name=RUN_STEP, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def run_step(task_id: str) -> str:
        worker = f"{socket.gethostname()}:{os.getpid()}"
        return engine.run_next_step(
            settings, process_session_factory(settings), task_id, worker, dispatch
        )

    @app.task(name=SWEEP, ignore_result=True)
    def sweep() -> dict[str, int]:
        return engine.recovery_sweep(settings, process_session_factory(settings), dispatch)

    app.conf.beat_schedule["scaffolder-recovery-sweep"] = {
        "task": SWEEP,
        "schedule": settings.scaffolder_sweep_interval_s,
        "options": {"expires": settings.scaffolder_sweep_interval_s * 2},
    }
