"""Bulk-written rows keep every character (COPY text format escapes on PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text

from catalog.service import CatalogService
from portal_backend.db import session_scope
from tests.catalog.factories import component

TRICKY = "tab\there, back\\slash \\N, new\nline, cr\rend \\. \\t"


def test_values_with_tabs_newlines_and_backslashes_round_trip(session_factory) -> None:  # type: ignore[no-untyped-def]
    entity = component("web", description=TRICKY, labels={"tier": "gold"})
    entity["spec"]["system"] = "shop"
    with session_scope(session_factory) as session:
        # A plain entity in the same batch: escaping is decided entity by entity.
        CatalogService(session).upsert_entities([component("plain"), entity])
    with session_scope(session_factory) as session:
        service = CatalogService(session)
        stored = session.execute(
            text("SELECT original_value FROM catalog_search WHERE key = 'metadata.description'")
        ).scalar_one()
        assert stored == TRICKY
        found = service.query_entities(term="back\\slash \\n", limit=5)["items"]
        assert [e["metadata"]["name"] for e in found] == ["web"]
        assert found[0]["metadata"]["description"] == TRICKY
        assert service.query_refs({"metadata.description": TRICKY}) == ["component:default/web"]
        plain = service.query_entities(term="plain", limit=5)["items"]  # its search rows
        assert [e["metadata"]["name"] for e in plain] == ["plain"]
        relations = {(r["type"], r["targetRef"]) for r in found[0]["relations"]}
        assert ("partOf", "system:default/shop") in relations
