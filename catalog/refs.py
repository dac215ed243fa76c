"""Entity references (``kind:namespace/name``) with Backstage's defaulting rules.

Refs are compared case-insensitively (names are unique per kind+namespace ignoring
case), so the canonical, stored form is entirely lowercase.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from catalog.errors import InputError

DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class EntityRef:
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.namespace}/{self.name}".lower()


class RefError(ValueError):
    """A reference that cannot be parsed (the message says why)."""


def parse_ref(
    ref: str,
    *,
    default_kind: str | None = None,
    default_namespace: str = DEFAULT_NAMESPACE,
) -> EntityRef:
    """Parse ``[kind:][namespace/]name``; missing parts take the defaults.

    As in Backstage, a ref without a kind is only valid where the context supplies
    a default kind (``spec.owner`` defaults to Group, ``spec.system`` to System, ...).
    """
    if type(ref) is str and type(default_namespace) is str:
        # An import parses each ref of a spec several times (validation, relations) and
        # the same owners and systems over and over; results are immutable. (Errors
        # are not cached: they are raised again.)
        return _parse_cached(ref, default_kind, default_namespace)
    return _parse(ref, default_kind, default_namespace)


@lru_cache(maxsize=65536)
def _parse_cached(ref: str, default_kind: str | None, default_namespace: str) -> EntityRef:
    return _parse(ref, default_kind, default_namespace)


def _parse(ref: str, default_kind: str | None, default_namespace: str) -> EntityRef:
    if not isinstance(ref, str) or not ref.strip():
        raise RefError("entity reference must be a non-empty string")
    text = ref.strip()
    kind: str | None
    if ":" in text:
        kind, _, rest = text.partition(":")
        if not kind:
            raise RefError(f"entity reference {ref!r} has an empty kind")
    else:
        kind, rest = None, text
    if "/" in rest:
        namespace, _, name = rest.partition("/")
        if not namespace:
            raise RefError(f"entity reference {ref!r} has an empty namespace")
    else:
        namespace, name = default_namespace, rest
    if not name or "/" in name or ":" in name:
        raise RefError(f"entity reference {ref!r} has an invalid name part")
    kind = kind or default_kind
    if not kind:
        raise RefError(
            f"entity reference {ref!r} needs a kind, e.g. 'component:{namespace}/{name}'"
        )
    return EntityRef(kind.lower(), namespace.lower(), name.lower())


def ref_of(entity: dict[str, Any]) -> str:
    """The canonical ref of an entity dict."""
    metadata = entity.get("metadata") or {}
    return str(
        EntityRef(
            str(entity.get("kind", "")),
            str(metadata.get("namespace") or DEFAULT_NAMESPACE),
            str(metadata.get("name", "")),
        )
    )


def normalize_ref(ref: str, default_kind: str | None = None) -> str:
    return str(parse_ref(ref, default_kind=default_kind))


def canonical_ref(ref: str) -> str:
    """The stored (lowercase) form of a full ref; InputError (a 400) when it does not parse."""
    try:
        return normalize_ref(ref)
    except RefError as exc:
        raise InputError(f"invalid entity ref {ref!r}: {exc}") from exc
