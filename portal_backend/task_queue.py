"""The queue the portal hands background work to (scaffolder steps), and its workers.

``portal_backend`` never imports ``workers``: workers import the portal's domain code,
so an import back would tie the two into one knot. The Celery queue is found instead
through the ``ragportal.task_queue`` entry point that ``workers`` declares in
pyproject.toml; ``create_app`` and the CLI ask for it here, and a test may hand
``create_app`` any other ``TaskQueue``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol

from portal_backend.scaffolder.engine import Dispatch
from portal_backend.settings import Settings

ENTRY_POINT_GROUP = "ragportal.task_queue"


class TaskQueue(Protocol):
    def dispatch(self) -> Dispatch:
        """Sends a newly submitted (or retried) scaffolder task's next step."""
        ...

    def run_worker(self, *, concurrency: int, beat: bool, pool: str) -> None:
        """Runs a worker of the portal's queue in this process until it is stopped."""
        ...

    def run_beat(self) -> None:
        """Runs the periodic scheduler alone in this process."""
        ...


class TaskQueueNotInstalled(RuntimeError):
    pass


def installed_task_queue(settings: Settings) -> TaskQueue:
    """The queue the installed ``workers`` package provides, for these settings."""
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    if len(found) != 1:
        raise TaskQueueNotInstalled(
            f"expected one '{ENTRY_POINT_GROUP}' entry point, found {len(found)}: "
            "reinstall the portal (pip install -e .) so that workers registers its queue"
        )
    factory = found[0].load()
    queue: TaskQueue = factory(settings)
    return queue
