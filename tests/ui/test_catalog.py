"""Catalog list (facets, search, sort, paging, shareable URL) and the entity page."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Page, expect

from tests.ui.conftest import login, snap
from tests.ui.seed import component, groups, rag_service, seed, set_status


def _query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def test_catalog_filters_search_sort_paging_and_entity_page(page: Page, ui_db) -> None:
    entities = groups() + rag_service("support-bot") + rag_service("hr-bot", owner="team-b")
    entities += [
        component(
            f"svc-{i:02d}",
            lifecycle="experimental" if i % 2 else "production",
            metadata={"description": "retrieval helper" if i == 7 else "plain service"},
        )
        for i in range(12)
    ]
    seed(ui_db, entities)
    set_status(ui_db, "component:default/hr-bot", "slo", {"state": "breached"})
    set_status(ui_db, "component:default/support-bot", "slo", {"state": "ok"})
    set_status(
        ui_db,
        "component:default/support-bot",
        "deployment",
        {
            "state": "Degraded",
            "cluster": "default",
            "updatedAt": "2026-01-01T00:00:00Z",
            "objects": [
                {
                    "kind": "Deployment",
                    "name": "support-bot-vllm",
                    "state": "Failed",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes have nvidia.com/gpu",
                },
                {"kind": "Service", "name": "support-bot-api", "state": "Ready"},
            ],
        },
    )
    total = len(entities)

    login(page, next_path="/catalog")
    expect(page.locator("#total")).to_have_text(str(total))
    snap(page, "catalog")

    # Facet: kind=Component (the count next to it is what the filter yields).
    component_box = page.get_by_role("checkbox", name=re.compile(r"^Component"))
    component_box.check()
    expect(page.locator("#total")).to_have_text("14")
    assert _query(page)["kind"] == ["Component"]

    # A second facet narrows further; the URL carries both, so the view can be shared.
    page.get_by_role("checkbox", name=re.compile(r"^breached")).check()
    expect(page.locator("#total")).to_have_text("1")
    expect(page.locator("#results")).to_contain_text("hr-bot")
    shared = page.url
    assert _query(page)["slo"] == ["breached"]
    page.goto(shared)
    expect(page.locator("#total")).to_have_text("1")

    # Remove a filter by its chip, then search full text.
    page.get_by_role("link", name="Remove filter SLO status breached").click()
    expect(page.locator("#total")).to_have_text("14")
    page.get_by_label("Search").fill("retrieval")
    page.get_by_label("Search").press("Enter")
    expect(page.locator("#total")).to_have_text("1")
    expect(page.locator("#results")).to_contain_text("svc-07")

    # Sort and cursor paging over the components.
    page.goto("/catalog?kind=component&sort=-name&limit=10")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(10)
    expect(rows.first).to_contain_text("svc-11")
    page.get_by_role("link", name="Next →").click()
    expect(rows).to_have_count(4)
    expect(rows.last).to_contain_text("hr-bot")
    snap(page, "catalog-page-2")
    page.get_by_role("link", name="← Previous").click()
    expect(rows.first).to_contain_text("svc-11")

    # Empty state.
    page.goto("/catalog?q=nothing-matches-this")
    expect(page.get_by_text("Nothing matches these filters")).to_be_visible()

    # Entity page: the overview (relations, endpoint), deployment objects with reasons on
    # the Deployment tab.
    page.goto("/catalog/default/component/support-bot")
    expect(page.get_by_role("heading", name="support-bot", exact=True)).to_be_visible()
    expect(page.locator("#endpoint-link")).to_have_attribute(
        "href", "http://support-bot.example.test"
    )
    page.get_by_text("Relations as a list").click()
    relations = page.get_by_role("list", name="Relations list")
    expect(relations).to_contain_text("resource:default/support-bot-model-server")
    graph = page.get_by_role("group", name="Relation graph of support-bot")
    expect(graph.locator("a")).to_have_count(4)  # model server, vector collection, API, owner
    snap(page, "entity-rag-service")
    graph.locator("a", has_text="support-bot-model").first.click()
    expect(page).to_have_url(re.compile("/catalog/default/resource/support-bot-model-server"))
    page.goto("/catalog/default/component/support-bot/deployment")
    # Why it is not healthy, said up front from its objects' reasons.
    expect(page.locator("#deployment-why")).to_contain_text(
        "Deployment/support-bot-vllm: Unschedulable 0/3 nodes have nvidia.com/gpu"
    )
    expect(page.locator("#deployment-state")).to_have_text("Degraded")
    expect(page.get_by_role("table")).to_contain_text("0/3 nodes have nvidia.com/gpu")


def test_delete_service_needs_the_typed_name(page: Page, ui_db) -> None:
    seed(ui_db, groups() + rag_service("old-bot"))
    login(page, next_path="/catalog/default/component/old-bot")
    page.get_by_role("link", name="Delete service…").click()
    # Its repository is not on this portal (a file:// link elsewhere): kept, and said so.
    expect(page.locator("#delete")).to_contain_text("not hosted by this portal and is kept")
    page.get_by_label("Type old-bot to confirm").fill("old-bot-typo")
    page.get_by_role("button", name="Delete service").click()
    expect(page.locator("#delete-error")).to_contain_text("Type old-bot exactly")
    page.get_by_label("Type old-bot to confirm").fill("old-bot")
    page.get_by_role("button", name="Delete service").click()
    expect(page).to_have_url(re.compile(r"/catalog\?deleted=old-bot"))
    expect(page.get_by_role("status")).to_contain_text("old-bot deleted")
    response = page.goto("/catalog/default/component/old-bot")
    assert response is not None and response.status == 404
    response = page.goto("/catalog/default/resource/old-bot-model-server")
    assert response is not None and response.status == 404
