"""Celery tasks of the provisioner: provision, tear down, the reconciler and the local
runtime's supervisor on beat.

The work is ``portal_backend.provisioning.service.Provisioner``; this module binds it to
Celery (a per-process database engine, task names, the beat entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery

from portal_backend.logging import get_logger
from portal_backend.provisioning import targets
from portal_backend.provisioning.local.runtime import LocalRuntime
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
SUPERVISE = "runtime.supervise"

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
        return targets.teardown(settings, process_session_factory(settings), service)

    @app.task(name=SUPERVISE, ignore_result=True)
    def supervise() -> list[dict[str, Any]]:
        """The local runtime's supervisor: restarts dead processes, updates the status."""
        runtime = LocalRuntime(
            settings,
            process_session_factory(settings),
            log=lambda m: log.info("runtime", msg=m),
        )
        changes = runtime.supervise_all()
        for change in changes:
            log.info("runtime.supervise", **change)
        return changes

    if settings.runtime_enabled:
        every = settings.runtime_supervise_interval_s
        app.conf.beat_schedule["runtime-supervise"] = {
            "task": SUPERVISE,
            "schedule": every,
            "options": {"expires": every},
        }

    @app.task(name=RECONCILE, ignore_result=True)
    def reconcile() -> list[dict[str, Any]]:
        return _provisioner(settings, "*").reconcile_all()

    app.conf.beat_schedule["provisioning-reconcile"] = {
        "task": RECONCILE,
        "schedule": settings.reconcile_interval_s,
        "options": {"expires": settings.reconcile_interval_s * 2},
    }
