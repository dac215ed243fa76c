"""Entity refs as the SLA domain uses them: ``kind:namespace/name``, kind lower case."""

from __future__ import annotations

import re

from catalog.errors import ErrorDetail, InputError

_REF = re.compile(
    r"^(?:(?P<kind>[A-Za-z][A-Za-z0-9-]*):)?"
    r"(?:(?P<ns>[a-z0-9][a-z0-9-]*)/)?"
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)$"
)


def normalize_ref(value: str, default_kind: str = "component", path: str = "service") -> str:
    match = _REF.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InputError(
            f"{path}: {value!r} is not an entity ref; use 'component:<namespace>/<name>'",
            [ErrorDetail(path, "expected an entity ref like 'component:default/my-service'")],
        )
    kind = (match["kind"] or default_kind).lower()
    return f"{kind}:{match['ns'] or 'default'}/{match['name']}"


def group_ref(owner: str | None) -> str | None:
    """Owner as a group ref (Backstage: an owner without a kind is a group)."""
    if not owner:
        return None
    return normalize_ref(owner, default_kind="group", path="spec.owner").lower()
