"""Who may change what in the SLA domain: a service's owner (its group's members), or an
admin; a group's budget: admins."""

from __future__ import annotations

from sqlalchemy.orm import Session

from catalog.errors import NotAllowedError
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
    service = session.get(SlaService, ref)
    if service is None:
        raise NotAllowedError(f"only an admin may set the budget of {ref} (no owner known)")
    check_owner(principal, service)


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
