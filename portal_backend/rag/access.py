"""Who may change a RAG service (deploy, evaluate, tear down): an admin, a token bound
to no group, or a write token of the group that owns the service's Component."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from catalog.errors import NotAllowedError
from catalog.refs import RefError, normalize_ref, parse_ref
from catalog.service import CatalogService
from portal_backend.auth.service import Principal


def _owner(entity: dict[str, Any]) -> str | None:
    namespace = (entity.get("metadata") or {}).get("namespace") or "default"
    owner = (entity.get("spec") or {}).get("owner")
    try:
        return str(parse_ref(str(owner), default_kind="group", default_namespace=namespace))
    except RefError:
        return None


def may_change(principal: Principal, entity: dict[str, Any]) -> bool:
    if not principal.has_scope("write"):
        return False
    if principal.is_admin or not principal.group:
        return True
    try:
        group = normalize_ref(principal.group, "group")
    except RefError:
        return False  # a token bound to a malformed group owns nothing
    return _owner(entity) == group


def check_may_change(
    session: Session, principal: Principal, namespace: str, name: str, action: str
) -> None:
    """Raises NotAllowedError unless ``principal`` may ``action`` the service (a service
    with no catalog entity left is anyone's with write scope to clean up)."""
    if principal.is_admin or not principal.group:
        return
    entity = CatalogService(session).get_by_ref(f"component:{namespace}/{name}")
    if entity is None or may_change(principal, entity):
        return
    raise NotAllowedError(
        f"this token may only {action} services owned by {principal.group}; "
        f"component:{namespace}/{name} is owned by {_owner(entity) or 'nobody'}"
    )
