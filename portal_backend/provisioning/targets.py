"""Where a service deploys, and the operations every target shares (provision, teardown).

Targets: a Kubernetes cluster (``Provisioner``), the local runtime (``LocalRuntime``:
processes on the portal's machine), or a plan (render and validate, apply nothing).
``auto`` means: the environment's entry in ``deploy_targets`` if there is one, else the
default cluster if clusters are configured, else the local runtime (or a plan when the
runtime is turned off).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from portal_backend.db import session_scope
from portal_backend.provisioning import records
from portal_backend.provisioning.local.runtime import LocalRuntime
from portal_backend.provisioning.models import ProvisionedService
from portal_backend.provisioning.service import Provisioner, ProvisioningError, cluster_name
from portal_backend.settings import Settings

AUTO = "auto"
TARGET_NAMES = (AUTO, records.KUBERNETES, records.LOCAL, records.PLAN)


@dataclass(frozen=True)
class Target:
    kind: str  # records.KUBERNETES, LOCAL or PLAN
    cluster: str | None = None
    # Why it is this target, for a plan: said in the task log and on the entity.
    reason: str = ""

    def describe(self) -> str:
        if self.kind == records.KUBERNETES:
            return f"cluster {self.cluster}"
        return {records.LOCAL: "the local runtime", records.PLAN: "a plan only"}[self.kind]


def choose(
    settings: Settings,
    *,
    environment: str | None = None,
    target: str | None = None,
    cluster: str | None = None,
) -> Target:
    """The target for a provisioning; ProvisioningError names the setting to fix."""
    wanted = target or AUTO
    if cluster:
        wanted = records.KUBERNETES
    if wanted == AUTO:
        wanted = settings.deploy_targets.get(environment or "", AUTO)
        if wanted in settings.clusters:
            cluster, wanted = wanted, records.KUBERNETES
    if wanted == AUTO:
        if settings.clusters:
            wanted = records.KUBERNETES
        elif settings.runtime_enabled:
            wanted = records.LOCAL
        else:
            return Target(
                records.PLAN,
                reason="no Kubernetes cluster is configured and the local runtime is off "
                "(RAGPORTAL_RUNTIME_ENABLED=false)",
            )
    if wanted == records.KUBERNETES:
        name = cluster_name(settings, cluster)
        if name is None:
            raise ProvisioningError(
                "no Kubernetes cluster is configured: add one to RAGPORTAL_CLUSTERS, or deploy "
                "to the local runtime (target local)"
            )
        return Target(records.KUBERNETES, name)
    if wanted == records.LOCAL:
        if not settings.runtime_enabled:
            raise ProvisioningError(
                "the local runtime is turned off (RAGPORTAL_RUNTIME_ENABLED=false): deploy to "
                "a cluster or as a plan"
            )
        return Target(records.LOCAL)
    if wanted == records.PLAN:
        return Target(
            records.PLAN,
            reason=f"the deploy target is plan (environment {environment})"
            if target in (None, AUTO)
            else "a plan was asked for (target plan)",
        )
    known = ", ".join([*TARGET_NAMES, *sorted(settings.clusters)])
    raise ProvisioningError(f"unknown deploy target {wanted!r}: use one of {known}")


def teardown(
    settings: Settings,
    session_factory: sessionmaker[Session],
    service: str,
    *,
    log: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Removes the service wherever it runs, then its catalog entities, secrets and tokens."""
    with session_scope(session_factory) as session:
        row = session.get(ProvisionedService, service)
        target = records.target_of(row) if row is not None else None
    runtime = LocalRuntime(settings, session_factory, log=log)
    # Processes or files of a service the runtime ran, even where its record is gone.
    local = (
        runtime.remove(service) if target == records.LOCAL or runtime.has_leftovers(service) else {}
    )
    result = Provisioner(settings, session_factory, log=log).teardown(
        service, on_cluster=target != records.LOCAL
    )
    if local:
        result["localRuntime"] = local
    return result
