"""Relations computed from an entity's spec.

Mirrors Backstage's built-in kinds processor: each spec field names a target with
a default kind, and yields a (relation, reverse relation) pair. Only the forward row
(source = the entity whose spec names the target) is stored; the reverse direction is
read from the same row through ``REVERSE`` (an import writes half the rows and index
entries it would writing both directions).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

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

# (kind, spec.type) -> extra rules for typed resources: model and adapter versions
# (docs/models.md). previousVersion chains the versions of one model or adapter; an
# adapter names the base model version it was trained on.
TYPE_RULES: dict[tuple[str, str], list[tuple[str, str | None, str, str]]] = {
    ("resource", "llm-model"): [
        ("previousVersion", "resource", "hasPreviousVersion", "hasNextVersion"),
    ],
    ("resource", "lora-adapter"): [
        ("previousVersion", "resource", "hasPreviousVersion", "hasNextVersion"),
        ("baseModel", "resource", "adapterOf", "hasAdapter"),
    ],
}

# Each relation type's reverse; an involution (dependsOn <-> dependencyOf, ...).
_ALL_RULES = [*RULES.values(), *TYPE_RULES.values()]
REVERSE: dict[str, str] = {
    t: r for rules in _ALL_RULES for _, _, a, b in rules for t, r in ((a, b), (b, a))
}
RELATION_TYPES = sorted({r for rules in _ALL_RULES for _, _, a, b in rules for r in (a, b)})
CANONICAL_TYPE = {t.lower(): t for t in RELATION_TYPES}


def _rules(kind: str, spec_type: Any) -> list[tuple[str, str | None, str, str]]:
    rules = RULES.get(kind, [])
    if isinstance(spec_type, str) and (kind, spec_type.lower()) in TYPE_RULES:
        return [*rules, *TYPE_RULES[(kind, spec_type.lower())]]
    return rules


def reference_fields(kind: str, spec_type: Any = None) -> list[tuple[str, str | None]]:
    return [(field, default) for field, default, _, _ in _rules(kind.lower(), spec_type)]


@lru_cache(maxsize=65536)
def _target(item: str, default_kind: str | None, namespace: str) -> str | None:
    """The canonical ref a spec value names (None when it does not parse). Imports
    resolve the same owners, systems and dependencies over and over."""
    try:
        return str(parse_ref(item, default_kind=default_kind, default_namespace=namespace))
    except RefError:
        return None


def forward_relations(entity: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source ref, type, target ref) rows named by ``entity``'s spec; source is the entity.

    The entity must be valid (see ``validate_entity``); unparsable refs are skipped.
    """
    kind = str(entity.get("kind", "")).lower()
    if kind not in RULES:
        return []
    spec = entity.get("spec") or {}
    rules = _rules(kind, spec.get("type"))
    namespace = (entity.get("metadata") or {}).get("namespace") or "default"
    me = ref_of(entity)
    rows: set[tuple[str, str, str]] = set()
    for field, default_kind, relation, _reverse in rules:
        value = spec.get(field)
        if value is None:
            continue
        for item in value if isinstance(value, list) else (value,):
            if type(item) is not str or not item:
                continue
            target = _target(item, default_kind, str(namespace))
            if target is not None:
                rows.add((me, relation, target))
    return sorted(rows)


def compute_relations(entity: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``forward_relations`` and their reverses: every relation the entity takes part in
    because of its own spec, as readers see them."""
    rows = set(forward_relations(entity))
    rows.update((target, REVERSE[relation], source) for source, relation, target in list(rows))
    return sorted(rows)
