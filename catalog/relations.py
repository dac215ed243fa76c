"""Relations computed from an entity's spec, stored in both directions.

Mirrors Backstage's built-in kinds processor: each spec field names a target with
a default kind, and yields a (relation, reverse relation) pair.
"""

from __future__ import annotations

from catalog.refs import RefError, parse_ref, ref_of

# kind -> [(spec field, default target kind, relation, reverse relation)]
RULES: dict[str, list[tuple[str, str | None, str, str]]] = {
    "component": [
        ("owner", "group", "ownedBy", "ownerOf"),
        ("system", "system", "partOf", "hasPart"),
        ("subcomponentOf", "component", "partOf", "hasPart"),
        ("providesApis", "api", "providesApi", "apiProvidedBy"),
        ("consumesApis", "api", "consumesApi", "apiConsumedBy"),
        ("dependsOn", None, "dependsOn", "dependencyOf"),
        ("dependencyOf", None, "dependencyOf", "dependsOn"),
    ],
    "api": [
        ("owner", "group", "ownedBy", "ownerOf"),
        ("system", "system", "partOf", "hasPart"),
    ],
    "resource": [
        ("owner", "group", "ownedBy", "ownerOf"),
        ("system", "system", "partOf", "hasPart"),
        ("dependsOn", None, "dependsOn", "dependencyOf"),
        ("dependencyOf", None, "dependencyOf", "dependsOn"),
    ],
    "system": [
        ("owner", "group", "ownedBy", "ownerOf"),
        ("domain", "domain", "partOf", "hasPart"),
    ],
    "domain": [
        ("owner", "group", "ownedBy", "ownerOf"),
        ("subdomainOf", "domain", "partOf", "hasPart"),
    ],
    "group": [
        ("parent", "group", "childOf", "parentOf"),
        ("children", "group", "parentOf", "childOf"),
        ("members", "user", "hasMember", "memberOf"),
    ],
    "user": [("memberOf", "group", "memberOf", "hasMember")],
    "template": [("owner", "group", "ownedBy", "ownerOf")],
    "location": [],
}

RELATION_TYPES = sorted({r for rules in RULES.values() for _, _, a, b in rules for r in (a, b)})
CANONICAL_TYPE = {t.lower(): t for t in RELATION_TYPES}


def reference_fields(kind: str) -> list[tuple[str, str | None]]:
    return [(field, default) for field, default, _, _ in RULES.get(kind.lower(), [])]


def compute_relations(entity: dict) -> list[tuple[str, str, str]]:
    """(source ref, type, target ref) rows for ``entity`` and their reverses.

    The entity must be valid (see ``validate_entity``); unparsable refs are skipped.
    """
    kind = str(entity.get("kind", "")).lower()
    spec = entity.get("spec") or {}
    namespace = (entity.get("metadata") or {}).get("namespace") or "default"
    me = ref_of(entity)
    rows: set[tuple[str, str, str]] = set()
    for field, default_kind, relation, reverse in RULES.get(kind, []):
        value = spec.get(field)
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item:
                continue
            try:
                target = str(
                    parse_ref(item, default_kind=default_kind, default_namespace=namespace)
                )
            except RefError:
                continue
            rows.add((me, relation, target))
            rows.add((target, reverse, me))
    return sorted(rows)
