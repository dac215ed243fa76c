"""What pages read, taken from the domain services (never a second implementation).

Thin helpers only: each one calls a domain service (catalog, scaffolder, SLA/cost) and
shapes nothing the service does not already decide.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from catalog.service import CatalogService


def entities_of_kind(session: Session, kind: str, limit: int = 200) -> list[dict[str, Any]]:
    result = CatalogService(session).query_entities(
        filters=[f"kind={kind}"], order_field="metadata.name", limit=limit
    )
    return result["items"]


def group_refs(session: Session) -> list[str]:
    """Groups in the catalog, as refs an owner field accepts."""
    refs = CatalogService(session).query_refs({"kind": "group"})
    return [ref for ref in refs if ref.startswith("group:")]
