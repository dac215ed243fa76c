"""The Celery application, built from Settings.

Production: ``REDIS_URL`` is the broker and workers run as ``ragportal worker``.
Embedded default (no ``REDIS_URL``): kombu's filesystem transport under the data folder,
so ``ragportal serve`` can start a worker process itself with nothing else installed.
The database, not Celery, is the source of truth for task state: no result backend.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from celery import Celery

from portal_backend.settings import Settings

# Each module defines ``register(app: Celery) -> None`` that adds its tasks and beat
# entries; a module that does not exist yet is skipped.
TASK_MODULES = (
    "workers.scaffolder",
    "workers.provisioning",
    "workers.sla",
    "workers.catalog",
    "workers.scorecards",
)


def _filesystem_broker_options(data_dir: Path) -> dict[str, object]:
    queue_dir = data_dir / "queue"
    for sub in ("out", "processed", "control"):
        (queue_dir / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(queue_dir / "out"),
        "data_folder_out": str(queue_dir / "out"),
        "processed_folder": str(queue_dir / "processed"),
        "store_processed": "false",
        # Exchange tables; kombu's default is ./control in the working directory.
        "control_folder": str(queue_dir / "control"),
        # The folder is polled; a step's next message should not wait a whole second.
        "polling_interval": 0.2,
    }


def make_celery(settings: Settings, queue: str | None = None) -> Celery:
    settings.ensure_dirs()
    queue = queue or settings.celery_queue
    if settings.redis_url:
        app = Celery("ragportal", broker=settings.redis_url)
        # The key prefix keeps deployments (and test sessions) sharing one Redis apart,
        # including kombu's unacked bookkeeping, which a queue name alone does not.
        transport_options: dict = {
            "visibility_timeout": 3600,
            "global_keyprefix": f"{queue}:",
            "queue_order_strategy": "priority",
        }
    else:
        app = Celery("ragportal", broker="filesystem://")
        transport_options = _filesystem_broker_options(settings.data_dir)
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_default_queue=queue,
        task_ignore_result=True,
        # A step is acknowledged only once it finished; a killed worker's step is redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        beat_schedule={},
        beat_schedule_filename=str(settings.data_dir / f"celerybeat-schedule-{queue}"),
        # A broker that is down must not hang an API request for long: the recovery
        # sweep re-sends whatever could not be sent.
        broker_connection_timeout=5,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        timezone="UTC",
    )
    app.conf.ragportal_settings = settings
    for module_name in TASK_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(app)
    return app
