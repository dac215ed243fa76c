"""Sending scaffolder work to the queue from the API process (producer only)."""

from __future__ import annotations

from collections.abc import Callable

from portal_backend.settings import Settings


def make_dispatcher(settings: Settings) -> Callable[[str], None]:
    from workers.celery_app import make_celery
    from workers.scaffolder import NEW_TASK_PRIORITY, dispatcher

    return dispatcher(make_celery(settings), NEW_TASK_PRIORITY)
