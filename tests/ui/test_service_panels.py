"""Entity page panels of a RAG service with real usage and cost; admin prices/budgets."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from playwright.sync_api import Page, expect

from portal_backend.db import session_scope
from portal_backend.sla import costs, services
from portal_backend.sla.clock import utcnow
from tests.conftest import LiveServer
from tests.ui.conftest import login, snap
from tests.ui.seed import groups, rag_service, seed, set_status

REF = "component:default/chat-bot"


def _push_usage(live_portal: LiveServer, minutes: int = 60) -> None:
    now = utcnow()
    records = []
    for i in range(minutes * 2):
        at = now - timedelta(minutes=minutes) + timedelta(seconds=30 * i)
        records.append(
            {
                "service": REF,
                "timestamp": at.isoformat(),
                "latency_ms": 400.0 + (i % 10) * 100,
                "ttft_ms": 120.0,
                "prompt_tokens": 300,
                "completion_tokens": 100,
                "outcome": "error" if i % 10 == 0 else "success",
            }
        )
    with live_portal.client() as api:
        response = api.post(
            "/api/sla/usage", json={"batch_id": uuid.uuid4().hex, "records": records}
        )
        assert response.status_code == 200, response.text


def _accrue_cost(ui_db, days: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Cost accrues the SLA service's way: price x GPUs x hours since the last accrual."""
    now = utcnow()
    with session_scope(ui_db) as session:
        service = services.sync_one(session, REF, now)
        assert service is not None
        costs.accrue(session, [service], now - timedelta(days=days))
        costs.accrue(session, [service], now)


def test_sla_and_cost_panels_with_ingested_usage(
    page: Page, live_portal: LiveServer, ui_db, ui_token
) -> None:
    seed(ui_db, groups() + rag_service("chat-bot"))
    set_status(ui_db, REF, "deployment", {"state": "Healthy", "objects": []})

    # Admin: a GPU price and a budget override, through the admin page.
    login(page, next_path="/admin")
    page.get_by_label("New item", exact=True).fill("gpu:l4")
    page.get_by_label("New item price").fill("2.5")
    page.get_by_role("button", name="Save prices").click()
    expect(page.get_by_role("status")).to_contain_text("Saved prices")
    expect(page.get_by_label("gpu:l4")).to_have_value("2.5")
    page.get_by_label("Service or group ref").fill(REF)
    page.get_by_label("Monthly budget (USD)").fill("300")
    page.get_by_role("button", name="Set budget").click()
    expect(page.locator("#budgets")).to_contain_text("$300.00")
    expect(page.locator("#budgets")).to_contain_text("override")
    page.get_by_label("New item price").fill("cheap")
    page.get_by_label("New item", exact=True).fill("gpu:h100")
    page.get_by_role("button", name="Save prices").click()
    expect(page.locator("#price-error")).to_contain_text("not a number")
    snap(page, "admin")

    _push_usage(live_portal)
    _accrue_cost(ui_db)
    with live_portal.client() as api:
        posted = api.post(
            "/api/sla/services/component/default/chat-bot/evaluations",
            json={"dataset": "eval/questions.jsonl", "metrics": {"hit_at_k": 0.8, "mrr": 0.65}},
        )
        assert posted.status_code == 201, posted.text

    page.goto("/catalog/default/component/chat-bot/sla")
    sla = page.locator("#sla")
    expect(sla.locator("#sla-success")).to_have_text(re.compile(r"90\.\d+ %"))
    expect(sla.locator("#sla-latency")).to_contain_text("ms")
    expect(page.locator("#sla-chart")).to_have_attribute("data-rendered", "true")
    cost = page.locator("#cost")
    # 1 GPU x $2.50/h x 72 h = $180; month-to-date counts what falls in this month.
    expect(page.locator("#cost-chart")).to_have_attribute("data-rendered", "true")
    expect(cost.get_by_role("table")).to_contain_text("$")
    expect(cost).to_contain_text("Cost per 1k tokens")
    expect(cost).to_contain_text("of $300.00")
    snap(page, "entity-sla-cost")
    page.get_by_role("link", name="Evaluation", exact=True).click()
    evaluation = page.locator("#evaluation")
    expect(evaluation).to_contain_text("hit_at_k")
    expect(evaluation).to_contain_text("0.800")
    page.get_by_role("link", name="SLA & cost", exact=True).click()

    # Window selector: the last hour holds all the usage, 7 days too.
    page.get_by_role("link", name="1h", exact=True).click()
    expect(page).to_have_url(re.compile(r"window=1h"))
    expect(sla.locator("#sla-success")).to_have_text(re.compile(r"90\.\d+ %"))
    page.get_by_role("link", name="7d", exact=True).click()
    expect(page).to_have_url(re.compile(r"window=7d"))
    expect(page.locator("#sla-chart")).to_have_attribute("data-rendered", "true")

    # Home, signed in as a member of the owning group: the group's service and the fleet.
    page.context.clear_cookies()
    login(page, token=ui_token("write", group="group:default/team-a"))
    group = page.get_by_role("region", name="My services")
    expect(group.get_by_role("link", name="chat-bot")).to_be_visible()
    expect(page.locator("#fleet-total")).to_have_text("1")
    expect(page.locator("#fleet-spend")).to_have_text(re.compile(r"\$[1-9]"))
    expect(page.locator("#fleet")).to_contain_text("Healthy: 1")
    snap(page, "home")
