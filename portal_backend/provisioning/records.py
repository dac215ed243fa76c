"""A provisioned service's record and its ``status.deployment`` on the catalog entity.

Shared by every provisioning target (Kubernetes, the local runtime, plan only), so the
catalog shows a service's deployment the same way wherever it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from catalog.errors import NotFoundError
from portal_backend.db import session_scope
from portal_backend.provisioning.models import ProvisionedService

KUBERNETES, LOCAL, PLAN = "kubernetes", "local", "plan"
# Deployment states in which workloads exist and hold resources (and cost money):
# Drifted still runs, only not as applied. Anything else -- no status, Planned, Down, an
# unknown word -- runs nothing.
RUNNING_STATES = frozenset({"Progressing", "Healthy", "Degraded", "Drifted"})


def now() -> datetime:
    return datetime.now(UTC)


def target_of(row: ProvisionedService) -> str:
    return row.target or (KUBERNETES if row.cluster else PLAN)


def get_or_create(session: Session, service: str, state: str) -> ProvisionedService:
    row = session.get(ProvisionedService, service)
    if row is None:
        at = now()
        row = ProvisionedService(
            service=service, namespace=service, state=state, created_at=at, updated_at=at
        )
        session.add(row)
    return row


def deployment_status(row: ProvisionedService) -> dict[str, Any]:
    """What the catalog entity shows as ``status.deployment``."""
    target = target_of(row)
    value: dict[str, Any] = {
        "state": row.state,
        "target": target,
        "objects": row.detail,
        "updatedAt": row.updated_at.isoformat(),
        "cluster": row.cluster,
        "namespace": row.namespace,
    }
    if row.endpoint:
        value["endpoint"] = row.endpoint
    if row.commit:
        value["commit"] = row.commit
    if row.last_error:
        value["message"] = row.last_error
    if row.state == "Planned" and not row.last_error:
        value["message"] = "plan recorded, nothing applied"
    return value


def record_of(row: ProvisionedService) -> dict[str, Any]:
    return {
        **deployment_status(row),
        "service": row.service,
        "entityRef": row.entity_ref,
        "environment": row.environment,
        "repoContentsUrl": row.repo_contents_url,
    }


def publish_status(
    session_factory: sessionmaker[Session],
    ref: str | None,
    value: dict[str, Any],
    log: Callable[[str], None] = lambda _m: None,
) -> None:
    """Sets ``status.deployment`` on the entity (kept by the portal if it is not there yet)."""
    if not ref:
        return
    from catalog.service import CatalogService

    try:
        with session_scope(session_factory) as session:
            CatalogService(session).set_status(ref, "deployment", value)
    except NotFoundError:
        log(f"{ref} is not in the catalog (yet): deployment status kept by the portal")
