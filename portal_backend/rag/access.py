"""Who may change a RAG service (deploy, evaluate, stop, tear down, upgrade): the members
of the group that owns its Component (or the owning user), admins, and unrestricted write
tokens (see ``Principal``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from catalog.errors import NotAllowedError
from catalog.service import CatalogService
from portal_backend.auth.identity import owner_ref
from portal_backend.auth.service import Principal


def may_change(principal: Principal, entity: dict[str, Any]) -> bool:
    return principal.may_change_owned_by(owner_ref(entity))


def check_may_change(
    session: Session, principal: Principal, namespace: str, name: str, action: str
) -> None:
    """Raises NotAllowedError unless ``principal`` may ``action`` the service (a service
    with no catalog entity left is anyone's with write scope to clean up)."""
    if not principal.has_scope("write"):
        raise NotAllowedError(f"to {action} a service you need write scope")
    if principal.is_admin or principal.unrestricted:
        return
    entity = CatalogService(session).get_by_ref(f"component:{namespace}/{name}")
    if entity is None or may_change(principal, entity):
        return
    raise NotAllowedError(
        f"only members of the owner ({owner_ref(entity) or 'nobody'}) or an admin may "
        f"{action} component:{namespace}/{name}; {principal.subject} is in "
        f"{', '.join(principal.groups) or 'no group'}"
    )
