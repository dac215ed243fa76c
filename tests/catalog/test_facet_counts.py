"""Facets and totals stay exact through imports, refreshes, orphans, status and deletes.

They come from running counts (catalog_facet_counts, kept by every writer of search rows
on both databases) and must equal what the entities say.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from catalog import combo_counts, facet_counts
from catalog.locations import LocationPolicy
from catalog.service import CatalogService
from catalog.tables import COMBINED_KEYS, COUNTED_KEYS
from portal_backend.db import session_scope
from tests.catalog.factories import component, group, resource

FACETS = ["kind", "spec.type", "spec.lifecycle", "metadata.tags", "metadata.namespace"]


def _values(entity: dict, key: str) -> set[str]:
    if key == "kind":
        return {entity["kind"].lower()}
    if key == "metadata.namespace":
        return {entity["metadata"].get("namespace", "default").lower()}
    section, field = key.split(".")
    value: Any = entity.get(section, {}).get(field)
    items = value if isinstance(value, list) else [value]
    return {str(v).lower() for v in items if v is not None}


def _check(service: CatalogService) -> None:
    """Facets (all, and kind-only filtered) and a by-query total match the entities."""
    entities = list(service.iter_entities())
    for kinds in (None, ["component"]):
        chosen = [e for e in entities if kinds is None or e["kind"].lower() in kinds]
        filters = [f"kind={kinds[0]}"] if kinds else []
        got = service.facets(FACETS, filters)["facets"]
        for key in FACETS:
            expected = Counter(v for e in chosen for v in _values(e, key))
            assert {f["value"].lower(): f["count"] for f in got[key]} == expected, (key, kinds)

    # by-query totals of the shapes counted from the running counts.
    def matching(kind: str | None, key: str | None, value: str | None) -> int:
        return sum(
            1
            for e in entities
            if (kind is None or e["kind"].lower() == kind)
            and (key is None or value in _values(e, key))
        )

    for kind, key, value in [
        ("component", "spec.type", "service"),
        (None, "spec.lifecycle", "production"),
        ("component", None, None),
        (None, None, None),
        (None, "metadata.namespace", "default"),
    ]:
        parts = ([f"kind={kind}"] if kind else []) + ([f"{key}={value}"] if key else [])
        got = service.query_entities(filters=[",".join(parts)] if parts else [], limit=1)
        assert got["totalItems"] == matching(kind, key, value), parts

    # Shapes counted from the combination counts: several conditions, several values,
    # OR of groups, "the key exists"; each total against the entities, and the page's
    # entities are the ones matching.
    def meets(entity: dict, group: dict[str, list[str] | None]) -> bool:
        held = {key: _values(entity, key) for key in group}
        return all(
            bool(held[key]) if wanted is None else bool(held[key] & set(wanted))
            for key, wanted in group.items()
        )

    for groups in COMBINED_FILTERS:
        wanted = sum(1 for e in entities if any(meets(e, g) for g in groups))
        params = [
            ",".join(f"{k}" if v is None else ",".join(f"{k}={x}" for x in v) for k, v in g.items())
            for g in groups
        ]
        got = service.query_entities(filters=params, limit=50)
        assert got["totalItems"] == wanted, params
        assert len(got["items"]) == wanted, params
        assert all(any(meets(e, g) for g in groups) for e in got["items"]), params
    _check_counts(service, bool(entities))


# Filters of kind, namespace, lifecycle and type alone (OR of AND-groups).
COMBINED_FILTERS: list[list[dict[str, list[str] | None]]] = [
    [{"kind": ["component"], "spec.type": ["service"], "spec.lifecycle": ["production"]}],
    [{"kind": ["component", "resource"], "spec.type": ["service", "database", "website"]}],
    [{"spec.type": ["website"]}, {"kind": ["group"]}],
    [{"kind": ["component"], "spec.lifecycle": None, "metadata.namespace": ["default"]}],
    [{"spec.lifecycle": ["experimental"], "spec.type": ["service"]}, {"spec.type": ["library"]}],
]


def _check_counts(service: CatalogService, any_rows: bool) -> None:
    # The running totals equal a count over the search rows, group by group.
    keys = ", ".join(f"'{k}'" for k in COUNTED_KEYS)
    counts = service.session.execute(
        text(
            "SELECT key, value, kind, sum(n) FROM catalog_facet_counts "
            "GROUP BY key, value, kind HAVING sum(n) <> 0"
        )
    ).all()
    rows = service.session.execute(
        text(
            "SELECT key, value, kind, count(*) FROM catalog_search "
            f"WHERE key IN ({keys}) GROUP BY key, value, kind"
        )
    ).all()
    assert sorted(map(tuple, counts)) == sorted(map(tuple, rows))
    assert bool(counts) == any_rows, "running counts are kept on both databases"

    # One combination per entity, as its search rows make it.
    columns = ", ".join(combo_counts.COLUMNS)
    combos = service.session.execute(
        text(
            f"SELECT {columns}, sum(n) FROM catalog_combo_counts "
            f"GROUP BY {columns} HAVING sum(n) <> 0"
        )
    ).all()
    expected = Counter(
        combo_counts.combination(
            e["kind"].lower(),
            ((key, v) for key in COMBINED_KEYS for v in _values(e, key)),
        )
        for e in service.iter_entities()
    )
    assert Counter({tuple(r[:-1]): r[-1] for r in combos}) == expected


def _write(path: Path, documents: list[dict]) -> None:
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))


def test_facets_and_totals_follow_every_kind_of_write(
    session_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    policy = LocationPolicy(file_roots=(tmp_path,))
    path = tmp_path / "catalog-info.yaml"
    documents = [
        component("web", tags=["python", "web"]),
        component("api", type="website", tags=["python"], title="API"),
        component("batch", lifecycle="experimental", tags=["go", "batch"]),
        component("gone", tags=["legacy"]),
        group("team-a"),
        resource("db", type="database", owner="team-a"),
    ]
    _write(path, documents)
    with session_scope(session_factory) as session:
        location = CatalogService(session, policy=policy).add_location("file", str(path))
    location_id = location["location"]["id"]
    with session_scope(session_factory) as session:
        CatalogService(session).upsert_entities([component("loose", type="library", tags=["go"])])
    with session_scope(session_factory) as session:
        _check(CatalogService(session))

    # A refresh that changes tags and types, adds one entity and drops one (orphaned).
    documents[0] = component("web", type="website", tags=["web"])
    documents[2] = component("batch", lifecycle="production", tags=["go", "rust"])
    documents[3] = component("new", tags=["python"])
    _write(path, documents)
    with session_scope(session_factory) as session:
        refreshed = CatalogService(session, policy=policy).refresh_location(location_id)
    assert refreshed["orphaned"] == ["component:default/gone"]
    with session_scope(session_factory) as session:
        _check(CatalogService(session))

    with session_scope(session_factory) as session:
        CatalogService(session).set_status("component:default/api", "slo", {"state": "ok"})
        # Two types at once: no single combination says which filter it meets, so
        # totals are counted from the entities while it exists, and stay exact.
        odd = {
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "User",
            "metadata": {"name": "odd"},
            "spec": {"memberOf": [], "type": ["service", "library"]},
        }
        CatalogService(session).upsert_entities([odd])
    with session_scope(session_factory) as session:
        _check(CatalogService(session))
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        assert service.delete_by_ref("component:default/loose")
        assert service.delete_by_ref("user:default/odd")
    with session_scope(session_factory) as session:
        _check(CatalogService(session))

    # Deltas folded into one row per group, the answers unchanged.
    monkeypatch.setattr(facet_counts, "COMPACT_AFTER_ROWS", -1)
    documents[1] = component("api", type="service", tags=["python", "go"])
    _write(path, documents)
    with session_scope(session_factory) as session:
        CatalogService(session, policy=policy).refresh_location(location_id)
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        _check(service)
        rows, groups = session.execute(
            text(
                "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT key, value, kind "
                "FROM catalog_facet_counts) AS g) FROM catalog_facet_counts"
            )
        ).one()
        assert rows == groups

    with session_scope(session_factory) as session:
        CatalogService(session).delete_location(location_id)
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        _check(service)
        assert service.facets(["spec.type"])["facets"]["spec.type"] == []
