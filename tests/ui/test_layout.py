"""Backstage's layout and vocabulary, and nothing clipped (issue 17, points 5, 6 and 8): a
sidebar instead of a top bar, a header band, entity tabs with the annotations out of the
way; the catalog's owner filter, the home table and the tasks filter fit; a service's
in-cluster address is not offered as a link."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.ui.conftest import login, snap
from tests.ui.seed import component, groups, rag_service, seed, set_status

LONG_OWNER = "group:default/customer-support-and-success-operations-emea"
SIZES = ({"width": 1440, "height": 900}, {"width": 390, "height": 844})


def _overflow(locator: Locator) -> int:
    """How many pixels of the element's content stick out of it to the right."""
    return int(locator.evaluate("el => el.scrollWidth - el.clientWidth"))


def _seed(ui_db) -> None:  # type: ignore[no-untyped-def]
    long_team = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": LONG_OWNER.rpartition("/")[2]},
        "spec": {"type": "team", "children": []},
    }
    entities = groups() + [long_team] + rag_service("chat-bot")
    entities += rag_service(
        "mesh-bot",
        **{"rag-portal.io/endpoint": "http://mesh-bot-rag-api.mesh-bot.svc.cluster.local:8080"},
    )
    entities[-4]["metadata"]["links"] = [
        {"url": "http://mesh-bot-rag-api.mesh-bot.svc.cluster.local:8080", "title": "RAG API"}
    ]
    entities += [component(f"svc-{i}", owner=LONG_OWNER) for i in range(3)]
    seed(ui_db, entities)
    set_status(
        ui_db,
        "component:default/chat-bot",
        "cost",
        {"mtdUsd": 12345.67, "budgetUsd": 50000, "projectedUsd": 20000},
    )
    set_status(ui_db, "component:default/chat-bot", "deployment", {"state": "Healthy"})


def test_sidebar_header_band_and_entity_tabs(page: Page, ui_db) -> None:
    _seed(ui_db)
    login(page, next_path="/catalog/default/component/chat-bot")
    sidebar = page.get_by_role("navigation", name="Main")
    expect(sidebar.get_by_role("link")).to_have_text(
        ["rag-portal", "Home", "Catalog", "Create", "Tasks", "Docs", "Admin", "Audit"]
    )
    box = sidebar.bounding_box()
    assert box is not None and box["x"] == 0 and box["height"] >= 800, box  # a left column
    expect(sidebar.get_by_role("link", name="Catalog")).to_have_attribute("aria-current", "page")

    header = page.locator(".page-header")
    expect(header.locator(".page-kind")).to_have_text("Component — rag-service")
    expect(header.get_by_role("heading", level=1)).to_have_text("chat-bot")
    labels = header.locator(".header-labels")
    expect(labels).to_contain_text("Owner")
    expect(labels).to_contain_text("team-a")
    expect(labels).to_contain_text("Lifecycle")
    expect(labels).to_contain_text("production")
    tabs = page.get_by_role("navigation", name="chat-bot sections")
    expect(tabs.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    # Annotations are folded away below the overview; the page is short.
    expect(page.locator("#annotations")).not_to_have_attribute("open", "")
    first_card = page.locator(".page .card").first
    expect(first_card).to_have_id("about")
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 1600, f"overview is {height}px tall"
    for name in (
        "Deployment",
        "SLA & cost",
        "Evaluation",
        "Scorecard",
        "Ask",
        "API",
        "Docs",
        "Dependencies",
    ):
        tabs.get_by_role("link", name=name, exact=True).click()
        expect(tabs.get_by_role("link", name=name, exact=True)).to_have_attribute(
            "aria-current", "page"
        )
    snap(page, "entity-dependencies")

    # Phone: the sidebar becomes a bar at the top, every tab still reachable.
    page.set_viewport_size(SIZES[1])
    page.goto("/catalog/default/component/chat-bot")
    box = sidebar.bounding_box()
    assert box is not None and box["y"] == 0 and box["width"] >= 380, box
    for link in tabs.get_by_role("link").all():
        link_box = link.bounding_box()
        assert link_box is not None and link_box["x"] + link_box["width"] <= 390, link_box


def test_nothing_is_clipped_and_cluster_addresses_are_not_links(
    page: Page, ui_db, ui_token
) -> None:
    _seed(ui_db)
    login(page, token=ui_token("write", group="group:default/team-a"))
    # Point 5: who is signed in, by the token's subject and name ("Welcome, admin" was
    # said to a token named "me").
    expect(page.locator(".page-header")).to_contain_text(
        "Signed in as tester with token “write-token”, write scope"
    )
    expect(page.get_by_text("Welcome")).to_have_count(0)
    for size in SIZES:
        page.set_viewport_size(size)
        # Home: the Month-to-date column of "My services" is whole.
        page.goto("/")
        mine = page.get_by_role("region", name="My services")
        cell = mine.get_by_role("cell", name=re.compile(r"\$12,345\.67"))
        expect(cell).to_have_text("$12,345.67 of $50,000.00")
        assert _overflow(cell) <= 0, f"the amount is cut at {size['width']}px"
        # The card holds the table (a narrow screen scrolls the table, not the page).
        assert _overflow(mine) <= 0, f"My services overflows at {size['width']}px"

        # Catalog: a long owner stays inside the filter card.
        page.goto("/catalog")
        facet = page.locator("aside.facet")
        expect(facet).to_contain_text("customer-support-and-success-operations-emea")
        assert _overflow(facet) <= 0, f"owner filter overflows at {size['width']}px"

        # Tasks: Apply sits with the filters it applies.
        page.goto("/tasks")
        bar = page.get_by_role("form", name="Filter tasks")
        apply = bar.get_by_role("button", name="Apply")
        mine = bar.get_by_text("Only mine")
        apply_box, mine_box, bar_box = apply.bounding_box(), mine.bounding_box(), bar.bounding_box()
        assert apply_box and mine_box and bar_box
        assert apply_box["y"] + apply_box["height"] <= bar_box["y"] + bar_box["height"] + 1
        if size["width"] > 800:
            gap = apply_box["x"] - (mine_box["x"] + mine_box["width"])
            assert 0 <= gap < 120, f"Apply is {gap}px from its filters"
        snap(page, f"tasks-{size['width']}")

    # Point 6: an in-cluster address is shown, not linked (a browser cannot reach it).
    page.set_viewport_size(SIZES[0])
    page.goto("/catalog/default/component/mesh-bot")
    expect(page.locator("#endpoint-text")).to_have_text(
        "http://mesh-bot-rag-api.mesh-bot.svc.cluster.local:8080"
    )
    expect(page.get_by_role("link", name=re.compile("svc.cluster.local"))).to_have_count(0)
    expect(page.locator("#about")).to_contain_text("inside its cluster only")
