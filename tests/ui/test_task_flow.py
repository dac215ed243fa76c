"""End to end through the browser with a real worker: create a RAG service from the
form (task completes, entity in the catalog), and cancel + retry from the task page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from portal_backend.db import session_scope
from portal_backend.scaffolder import catalog_port
from portal_backend.scaffolder.registration import register_shipped_templates
from tests.conftest import LiveServer
from tests.ui.conftest import UI_TEMPLATES, login, snap
from tests.ui.seed import groups, seed

TASK_URL = re.compile(r"/create/tasks/[0-9a-f-]{36}$")


def _wait_done(page: Page, timeout: float) -> None:
    status = page.locator("#task-status")
    expect(status).to_have_text(re.compile("^(completed|failed|cancelled)$"), timeout=timeout)
    if status.inner_text() != "completed":
        snap(page, "task-not-completed")
        steps = page.get_by_role("list", name="Steps").inner_text()
        raise AssertionError(
            f"task {status.inner_text()}:\n{steps}\n{page.locator('#log').inner_text()}"
        )


def test_create_rag_service_through_the_form(
    page: Page, live_portal: LiveServer, worker, ui_db
) -> None:
    seed(ui_db, groups())
    register_shipped_templates(live_portal.settings, ui_db)
    login(page, next_path="/create")
    snap(page, "create-picker")
    page.get_by_role("link", name="Choose Create RAG service").click()
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")
    page.locator('[name="p0[name]"]').fill("docs-bot")
    page.locator('[name="p0[owner]"]').select_option("group:default/team-a")
    for step in ("Step 2 of 5", "Step 3 of 5", "Step 4 of 5", "Step 5 of 5: Review"):
        page.get_by_role("button", name="Next").click()
        expect(page.locator("#progress")).to_contain_text(step)
    snap(page, "create-review")
    page.get_by_role("button", name="Create").click()

    expect(page).to_have_url(TASK_URL, timeout=30_000)
    _wait_done(page, 180_000)
    steps = page.get_by_role("list", name="Steps")
    expect(steps.locator(".badge.completed")).to_have_count(
        steps.locator("li").count() - steps.locator(".badge.skipped").count()
    )
    expect(page.locator("#log")).to_contain_text("[publish]")
    snap(page, "task-completed")

    outputs = page.get_by_role("list", name="Output links")
    expect(outputs.get_by_role("link", name="Repository")).to_be_visible()
    outputs.get_by_role("link", name="Open in catalog").click()
    expect(page).to_have_url(re.compile("/catalog/default/component/docs-bot"))
    expect(page.get_by_role("heading", name=re.compile("docs-bot"))).to_be_visible()
    # Created with the defaults on a portal without a cluster: it runs on this machine.
    deployment = page.locator("#deployment")
    expect(deployment.get_by_role("heading").locator(".badge")).to_have_text("Healthy")
    expect(page.locator("#deployment-where")).to_contain_text("Local runtime")
    expect(page.locator("#endpoint-link")).to_have_attribute(
        "href", re.compile(r"^http://127\.0\.0\.1:\d+$")
    )

    # Ask it from its page: the answer cites the example corpus, with its figures.
    page.get_by_label("Question").fill(
        "What does the assistant do when no document passage is relevant?"
    )
    page.get_by_role("button", name="Ask", exact=True).click()
    answer = page.locator("#ask-answer")
    expect(answer).to_be_visible(timeout=120_000)
    expect(answer.get_by_role("list", name="Citations")).to_contain_text("getting-started.md")
    expect(page.locator("#ask-figures")).to_contain_text(re.compile(r"\d+ ms · \d+ tokens"))
    snap(page, "entity-ask")
    # Its usage reached the portal: the SLA panel counts the question.
    page.goto("/catalog/default/component/docs-bot?window=1h")
    for _ in range(30):
        if page.locator("#sla-success").count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(page.locator("#sla-success")).to_be_visible()

    page.goto("/catalog?type=rag-service")
    expect(page.locator("#results")).to_contain_text("docs-bot")
    page.goto("/")
    mine = page.get_by_role("region", name="My services")
    expect(mine.get_by_role("link", name="docs-bot")).to_be_visible()
    page.goto("/tasks")
    expect(page.get_by_role("row", name=re.compile("docs-bot"))).to_contain_text("completed")
    snap(page, "tasks")


def test_cancel_and_retry_from_the_task_page(
    page: Page, live_portal: LiveServer, worker, ui_db
) -> None:
    with session_scope(ui_db) as session:
        catalog_port.register_template_files(
            session, [UI_TEMPLATES / "slow-task" / "template.yaml"]
        )
    login(page, next_path="/templates")
    snap(page, "templates")
    page.get_by_role("link", name="Slow task (browser test template)").click()
    page.get_by_role("link", name="Create with this template").click()
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(TASK_URL, timeout=30_000)

    # The live log (SSE) shows the wait starting; cancel it there.
    expect(page.locator("#log")).to_contain_text("Waiting 4 s", timeout=60_000)
    page.get_by_role("button", name="Cancel task").click()
    expect(page.locator("#task-status")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#log")).not_to_contain_text("slow task finished")
    snap(page, "task-cancelled")

    page.get_by_role("button", name="Retry").click()
    _wait_done(page, 60_000)
    expect(page.locator("#log")).to_contain_text("slow task finished")
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)
    snap(page, "task-retried")
