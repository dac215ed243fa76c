"""The create form: JSON-Schema pages, browser validation, live sizing, server errors
shown at their fields, and nothing submitted while the input is invalid."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from portal_backend.scaffolder.registration import register_shipped_templates
from tests.conftest import LiveServer
from tests.ui.conftest import login, snap
from tests.ui.seed import groups, seed


def _field(page: Page, page_index: int, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'[name="p{page_index}[{name}]"]')


def _task_count(live_portal: LiveServer) -> int:
    with live_portal.client() as api:
        return api.get("/api/scaffolder/v2/tasks").json()["totalTasks"]


def test_invalid_input_shows_field_errors_and_submits_nothing(
    page: Page, live_portal: LiveServer, ui_db
) -> None:
    seed(ui_db, groups())
    register_shipped_templates(live_portal.settings, ui_db)
    login(page, next_path="/create")
    page.get_by_role("link", name="Choose Create RAG service").click()
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")
    expect(page.locator("#progress")).to_contain_text("Step 1 of 5: Service")

    # Browser validation: a bad name keeps the user on the page, the error at the field.
    _field(page, 0, "name").fill("Bad_Name")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 1 of 5")
    name_group = page.locator('[data-schemapath="p0.name"]')
    expect(name_group.locator(".errmsg")).to_contain_text(re.compile("pattern|format", re.I))
    expect(page.locator("#form-errors")).to_contain_text("name")
    snap(page, "create-invalid-name")

    _field(page, 0, "name").fill("good-bot")
    _field(page, 0, "owner").select_option("group:default/team-b")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 2 of 5: Documents")
    # Arrays of strings: an added URL is validated against the item pattern.
    urls = page.locator('[data-schemapath="p1.source_urls"]')
    urls.get_by_role("button", name=re.compile("Add")).first.click()
    _field(page, 1, "source_urls][0").fill("ftp://docs.example/handbook.pdf")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 2 of 5")
    expect(page.locator('[data-schemapath="p1.source_urls.0"] .errmsg')).to_be_visible()
    _field(page, 1, "source_urls][0").fill("https://docs.example/handbook.pdf")
    page.get_by_role("button", name="Next").click()

    # Model and GPUs: the sizing panel follows the choices live.
    expect(page.locator("#progress")).to_contain_text("Step 3 of 5: Model and GPUs")
    sizing = page.locator("#sizing")
    expect(sizing).to_contain_text("Fits")
    _field(page, 2, "model").select_option("llama-3-70b-instruct")
    _field(page, 2, "concurrency").fill("256")
    _field(page, 2, "concurrency").press("Tab")
    expect(sizing).to_contain_text("Does not fit")
    snap(page, "create-sizing")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#progress")).to_contain_text("Step 4 of 5")
    page.get_by_role("button", name="Next").click()

    expect(page.locator("#progress")).to_contain_text("Step 5 of 5: Review")
    review = page.locator("#review-values")
    expect(review).to_contain_text("good-bot")
    expect(review).to_contain_text("llama-3-70b-instruct")

    # The server refuses what the browser cannot know (it does not fit any node): the
    # error is shown at the GPU field on its page, and no task exists.
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#form-errors")).to_contain_text("gpu_class")
    expect(page.locator("#progress")).to_contain_text("Step 3 of 5")
    gpu_group = page.locator('[data-schemapath="p2.gpu_class"]')
    expect(gpu_group.locator(".errmsg").last).to_be_visible()
    snap(page, "create-server-error")
    assert _task_count(live_portal) == 0
