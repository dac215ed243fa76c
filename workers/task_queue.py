"""The portal's task queue on Celery: the producer the API process sends with, and the
worker and beat processes. Found by the portal through the ``ragportal.task_queue``
entry point (pyproject.toml), never imported by it."""

from __future__ import annotations

import threading

from celery import Celery

from portal_backend.scaffolder.engine import Dispatch
from portal_backend.settings import Settings
from workers.celery_app import make_celery
from workers.scaffolder import NEW_TASK_PRIORITY, dispatcher


class CeleryTaskQueue:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._celery: Celery | None = None
        self._lock = threading.Lock()

    def _app(self) -> Celery:
        # Built on first use: an API process that never submits a task needs no broker.
        with self._lock:
            if self._celery is None:
                self._celery = make_celery(self.settings)
            return self._celery

    def dispatch(self) -> Dispatch:
        def send_new_task(task_id: str) -> None:
            dispatcher(self._app(), NEW_TASK_PRIORITY)(task_id)

        return send_new_task

    def run_worker(self, *, concurrency: int, beat: bool, pool: str) -> None:
        argv = [
            "worker",
            "--loglevel",
            self.settings.log_level,
            "--concurrency",
            str(concurrency),
            "--pool",
            pool,
            "--queues",
            self.settings.celery_queue,
            # Workers coordinate through the database, not through broadcast chatter.
            "--without-gossip",
            "--without-mingle",
        ]
        if beat:
            argv.append("--beat")
        self._app().worker_main(argv)

    def run_beat(self) -> None:
        self._app().start(["beat", "--loglevel", self.settings.log_level])
