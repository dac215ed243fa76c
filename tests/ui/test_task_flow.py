"""The task page with a real worker: steps and times follow the live event stream (no
reload), long log lines wrap, cancel and retry. The create flow of a RAG service is in
test_newcomer_journey.py."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from portal_backend.db import session_scope
from portal_backend.scaffolder import catalog_port
from tests.conftest import LiveServer
from tests.ui.conftest import UI_TEMPLATES, login, snap

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


def test_steps_follow_the_event_stream_and_long_lines_wrap(
    page: Page, live_portal: LiveServer, worker, ui_db
) -> None:
    """Issue 17, point 7: the steps said "open" while the log showed them finished, the
    finished time needed a reload, and long log lines ran off the edge."""
    with session_scope(ui_db) as session:
        catalog_port.register_template_files(
            session, [UI_TEMPLATES / "live-task" / "template.yaml"]
        )
    login(page, next_path="/create/templates/default/live-task")
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(TASK_URL, timeout=30_000)
    # A mark in this document: a reload (or any navigation) would lose it.
    page.evaluate("window.__sameDocument = true")
    expect(page.locator("#task-finished")).to_have_text("not yet")
    steps = page.get_by_role("list", name="Steps")
    # The first step's badge turns completed while the last one still waits.
    first = steps.locator('[data-step="first"] [data-step-status]')
    expect(first).to_have_text("completed", timeout=30_000)
    expect(steps.locator('[data-step="last"] [data-step-status]')).not_to_have_text("completed")
    expect(page.locator("#task-status")).to_have_text("completed", timeout=30_000)
    expect(steps.locator(".badge.completed")).to_have_count(3)
    expect(page.locator("#task-finished")).to_have_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d"))
    assert page.evaluate("window.__sameDocument === true"), "the task page reloaded"

    log = page.locator("#log")
    expect(log).to_contain_text("unless-it-wraps")
    # Wrapped: nothing of the log is cut at its right edge, at desktop and phone width.
    for size in ({"width": 1440, "height": 900}, {"width": 390, "height": 844}):
        page.set_viewport_size(size)
        overflow = log.evaluate("el => el.scrollWidth - el.clientWidth")
        assert overflow <= 1, f"log overflows by {overflow}px at {size['width']}px"
    snap(page, "task-live")
