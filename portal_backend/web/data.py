"""What pages read, taken from the domain services (never a second implementation).

Thin helpers only: each one calls a domain service (catalog, scaffolder, SLA/cost) and
shapes nothing the service does not already decide.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from catalog.refs import RefError, parse_ref
from catalog.service import CatalogService


def entities_of_kind(session: Session, kind: str, limit: int = 200) -> list[dict[str, Any]]:
    result = CatalogService(session).query_entities(
        filters=[f"kind={kind}"], order_field="metadata.name", limit=limit
    )
    return result["items"]


def has_groups(session: Session) -> bool:
    return bool(CatalogService(session).query_entities(filters=["kind=group"], limit=1)["items"])


def groups(session: Session) -> list[tuple[str, str]]:
    """(ref, title) of every Group, for owner pickers: people pick a team by its title."""
    return [
        (
            f"group:{e['metadata'].get('namespace') or 'default'}/{e['metadata']['name']}",
            str(e["metadata"].get("title") or e["metadata"]["name"]),
        )
        for e in entities_of_kind(session, "group", limit=500)
    ]


def owner_titles(session: Session, owners: list[str]) -> dict[str, str]:
    """``spec.owner`` value (``team-a`` or ``group:default/team-a``) -> its entity's title,
    for the owners that have one."""
    refs: dict[str, str] = {}
    for owner in dict.fromkeys(owners):
        try:
            refs[owner] = str(parse_ref(owner, default_kind="group"))
        except RefError:
            continue
    ordered = sorted(set(refs.values()))
    found = dict(zip(ordered, CatalogService(session).get_by_refs(ordered), strict=True))
    titles = {}
    for owner, ref in refs.items():
        entity = found.get(ref)
        if entity is not None:
            meta = entity.get("metadata") or {}
            titles[owner] = str(meta.get("title") or meta.get("name"))
    return titles
