"""Celery tasks of the provisioner: provision, tear down, and the reconciler on beat.

The work is ``portal_backend.provisioning.service.Provisioner``; this module binds it to
Celery (a per-process database engine, task names, the beat entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery

from portal_backend.logging import get_logger
from portal_backend.provisioning.service import (
    Provisioner,
    ProvisioningError,
    ProvisionRequest,
)
from portal_backend.settings import Settings
from workers.sessions import process_session_factory

PROVISION = "provisioning.provision"
TEARDOWN = "provisioning.teardown"
RECONCILE = "provisioning.reconcile"

log = get_logger(__name__)


def _provisioner(settings: Settings, service: str) -> Provisioner:
    return Provisioner(
        settings,
        process_session_factory(settings),
        log=lambda m: log.info("provision", service=service, msg=m),
    )


def register(app: Celery) -> None:
    settings: Settings = app.conf.ragportal_settings

    @app.task(name=PROVISION, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def provision(
        service: str,
        bundle_dir: str,
        environment: str | None = None,
        cluster: str | None = None,
        allow_cpu_fallback: bool = False,
        gpu_class: str | None = None,
        entity_ref: str | None = None,
    ) -> dict[str, Any]:
        request = ProvisionRequest(
            service=service,
            bundle_dir=Path(bundle_dir),
            environment=environment,
            cluster=cluster,
            allow_cpu_fallback=allow_cpu_fallback,
            gpu_class=gpu_class,
            entity_ref=entity_ref,
        )
        try:
            return _provisioner(settings, service).provision(request).as_dict()
        except ProvisioningError as exc:
            # Recorded on the service row and the entity already; the task just reports it.
            return {"service": service, "state": "Degraded", "message": exc.message}

    @app.task(name=TEARDOWN, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def teardown(service: str) -> dict[str, Any]:
        return _provisioner(settings, service).teardown(service)

    @app.task(name=RECONCILE, ignore_result=True)
    def reconcile() -> list[dict[str, Any]]:
        return _provisioner(settings, "*").reconcile_all()

    app.conf.beat_schedule["provisioning-reconcile"] = {
        "task": RECONCILE,
        "schedule": settings.reconcile_interval_s,
        "options": {"expires": settings.reconcile_interval_s * 2},
    }
