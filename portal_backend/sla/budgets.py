"""Monthly budgets set by admins: a service's (overrides its annotation) or an owner
group's (alerts on the sum of its services' spend)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from catalog.errors import NotFoundError
from portal_backend.sla.refs import normalize_ref
from portal_backend.sla.tables import Budget, GroupBudget, SlaService


def budget_ref(kind: str, namespace: str, name: str) -> str:
    ref = normalize_ref(f"{kind}:{namespace}/{name}", path="ref")
    # Owners are compared lower-cased (group_ref), as Backstage compares refs.
    return ref.lower() if ref.startswith("group:") else ref


def _group_view(row: GroupBudget) -> dict[str, Any]:
    return {
        "ref": row.group_ref,
        "monthlyUsd": row.monthly_usd,
        "source": "group",
        "updatedAt": row.updated_at.isoformat(),
        "updatedBy": row.updated_by,
    }


def list_budgets(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Service budgets (override or annotation) in ``items``, group budgets in ``groups``."""
    overrides = {b.ref: b.monthly_usd for b in session.scalars(select(Budget))}
    items = []
    for s in session.scalars(select(SlaService).order_by(SlaService.service_ref)):
        budget = overrides.pop(s.service_ref, None)
        items.append(
            {
                "ref": s.service_ref,
                "monthlyUsd": budget if budget is not None else s.monthly_budget_usd,
                "source": "override" if budget is not None else "annotation",
            }
        )
    items += [{"ref": r, "monthlyUsd": v, "source": "override"} for r, v in overrides.items()]
    groups = session.scalars(select(GroupBudget).order_by(GroupBudget.group_ref))
    return {"items": items, "groups": [_group_view(g) for g in groups]}


def get_budget(session: Session, ref: str) -> dict[str, Any]:
    """One budget (``ref`` from ``budget_ref``): a group's, or a service's override or
    annotation."""
    if ref.startswith("group:"):
        row = session.get(GroupBudget, ref)
        if row is None:
            raise NotFoundError(f"no budget for {ref}; set one with PUT")
        return _group_view(row)
    override = session.get(Budget, ref)
    if override is not None:
        return {"ref": ref, "monthlyUsd": override.monthly_usd, "source": "override"}
    service = session.get(SlaService, ref)
    if service is None or service.monthly_budget_usd is None:
        raise NotFoundError(f"no budget for {ref}")
    return {"ref": ref, "monthlyUsd": service.monthly_budget_usd, "source": "annotation"}


def set_budget(
    session: Session, ref: str, monthly_usd: float, *, by: str, now: datetime
) -> dict[str, Any]:
    """Sets the monthly budget of an owner group (``group:`` ref) or of a service."""
    is_group = ref.startswith("group:")
    row: GroupBudget | Budget | None = (
        session.get(GroupBudget, ref) if is_group else session.get(Budget, ref)
    )
    if row is None:
        row = (
            GroupBudget(group_ref=ref, monthly_usd=monthly_usd, updated_at=now)
            if is_group
            else Budget(ref=ref, monthly_usd=monthly_usd, updated_at=now)
        )
        session.add(row)
    row.monthly_usd = monthly_usd
    row.updated_at = now
    row.updated_by = by
    if isinstance(row, GroupBudget):
        session.flush()
        return _group_view(row)
    return {"ref": ref, "monthlyUsd": row.monthly_usd, "source": "override"}


def delete_budget(session: Session, ref: str) -> None:
    table = GroupBudget if ref.startswith("group:") else Budget
    row = session.get(table, ref)
    if row is None:
        what = "budget" if table is GroupBudget else "budget override"
        raise NotFoundError(f"no {what} for {ref}")
    session.delete(row)
