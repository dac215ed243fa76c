"""Users and groups from the catalog (Backstage's model): who a signed-in person is, which
groups they belong to, and what they may therefore do.

A ``User`` entity names its groups in ``spec.memberOf`` (and, once the catalog has
resolved them, in ``memberOf`` relations); a group's members own what the group owns.
Admins are the members of one configured group.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from catalog.refs import RefError, parse_ref
from catalog.service import CatalogService


@dataclass(frozen=True)
class AccessPolicy:
    """Site-wide rules that turn a user's groups into rights (from the settings)."""

    admin_group: str | None = None

    def __post_init__(self) -> None:
        if self.admin_group and self.admin_group_ref is None:
            raise ValueError(
                f"admin_group must be a group ref like 'group:default/platform', "
                f"got {self.admin_group!r}"
            )

    @property
    def admin_group_ref(self) -> str | None:
        return group_ref(self.admin_group) if self.admin_group else None

    def scope_for(self, groups: Iterable[str]) -> str:
        """A person's scope: admin in the admin group, write otherwise."""
        admin = self.admin_group_ref
        return "admin" if admin is not None and admin in set(groups) else "write"


def group_ref(value: str, namespace: str = "default") -> str | None:
    """``value`` as a canonical group ref (a ref without a kind is a group), or None."""
    try:
        return str(parse_ref(value, default_kind="group", default_namespace=namespace))
    except RefError:
        return None


def owner_ref(entity: dict[str, Any]) -> str | None:
    """An entity's ``spec.owner`` as a canonical ref (no kind = a group), or None."""
    owner = (entity.get("spec") or {}).get("owner")
    namespace = (entity.get("metadata") or {}).get("namespace") or "default"
    return group_ref(owner, namespace) if isinstance(owner, str) else None


def user_ref(value: str) -> str | None:
    try:
        return str(parse_ref(value, default_kind="user"))
    except RefError:
        return None


def groups_of_entity(user: dict[str, Any]) -> tuple[str, ...]:
    """A User entity's groups: ``spec.memberOf`` and its ``memberOf`` relations."""
    namespace = (user.get("metadata") or {}).get("namespace") or "default"
    found: list[str] = []
    member_of = (user.get("spec") or {}).get("memberOf") or []
    for value in member_of if isinstance(member_of, list) else []:
        ref = group_ref(str(value), namespace)
        if ref and ref not in found:
            found.append(ref)
    for relation in user.get("relations") or []:
        if str(relation.get("type", "")).lower() == "memberof":
            ref = group_ref(str(relation.get("targetRef", "")), namespace)
            if ref and ref not in found:
                found.append(ref)
    return tuple(found)


def find_user(session: Session, field: str, value: str) -> list[dict[str, Any]]:
    """User entities whose ``field`` (e.g. ``spec.profile.email``, ``metadata.name``)
    equals ``value``, case-insensitively; at most two (two is already ambiguous)."""
    query = {"kind": "user", field: value}
    return list(CatalogService(session).query_entities(query=query, limit=2)["items"])


def user_entity(session: Session, subject: str) -> dict[str, Any] | None:
    return CatalogService(session).get_by_ref(subject)


def merge_groups(*sources: Iterable[str]) -> tuple[str, ...]:
    merged: list[str] = []
    for source in sources:
        for ref in source:
            if ref not in merged:
                merged.append(ref)
    return tuple(merged)
