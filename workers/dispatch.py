"""Sending scaffolder work to the queue from the API process (producer only)."""

from __future__ import annotations

from collections.abc import Callable

from portal_backend.settings import Settings


def make_dispatcher(settings: Settings) -> Callable[[str], None]:
    from workers.celery_app import make_celery
    from workers.scaffolder import dispatcher

    return dispatcher(make_celery(settings))
