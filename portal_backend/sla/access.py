"""Who may change what in the SLA domain: a service's owner (its group's members), or an
admin; a group's budget: admins."""

from __future__ import annotations

from sqlalchemy.orm import Session

from catalog.errors import NotAllowedError
from catalog.service import CatalogService
from portal_backend.auth.identity import owner_ref
from portal_backend.auth.service import Principal
from portal_backend.sla.refs import group_ref, normalize_ref
from portal_backend.sla.tables import SlaService


def check_owner(principal: Principal, service: SlaService) -> None:
    if principal.may_change_owned_by(group_ref(service.owner)):
        return
    raise NotAllowedError(
        f"only members of {service.owner or 'the owner group'} or an admin may do this for "
        f"{service.service_ref}"
    )


def check_may_set_budget(session: Session, principal: Principal, ref: str) -> None:
    """A service's budget: its owner's members or an admin; a group's: an admin (the
    platform team sets what a team may spend)."""
    if principal.is_admin:
        return
    if ref.startswith("group:"):
        raise NotAllowedError(f"only an admin may set the budget of {ref}")
    # The catalog says who owns it (the SLA domain's copy may lag behind a re-import).
    entity = CatalogService(session).get_by_ref(ref)
    service = session.get(SlaService, ref)
    owner = owner_ref(entity) if entity is not None else service.owner if service else None
    if not principal.may_change_owned_by(owner):
        raise NotAllowedError(
            f"only members of {owner or 'the owner group'} or an admin may set the budget of {ref}"
        )


def check_may_post_evaluation(principal: Principal, service: SlaService) -> None:
    """The service's own ingest token, a write token of its owner group, or an admin."""
    if principal.purpose == "ingest":
        if normalize_ref(principal.service_ref or "") != service.service_ref:
            raise NotAllowedError(
                f"this ingest token belongs to {principal.service_ref}, not {service.service_ref}"
            )
    elif not principal.has_scope("write"):
        raise NotAllowedError("posting an evaluation needs a write token")
    else:
        check_owner(principal, service)
