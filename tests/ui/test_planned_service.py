"""A service that was only planned (issue 17, points 2 and 3): on a portal with no
cluster and the local runtime off, the deploy step applies nothing. It must not look
green and done, the service must say why and what to do, re-provisioning must work, and
deleting it (with its repository) must free the name for a new service.

Its own portal and worker (the local runtime off), on the suite's database and a queue
of their own; creating a plan-only service takes seconds.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from portal_backend.git_hosts import local_repos
from portal_backend.scaffolder.registration import register_shipped_templates
from portal_backend.settings import Settings
from tests.conftest import BOOTSTRAP_TOKEN, LiveServer, start_live_server, truncate_all
from tests.scaffolder.conftest import Workers
from tests.ui.conftest import snap
from tests.ui.seed import groups, rag_service, seed, set_status

NAME = "plan-bot"
TASK_URL = re.compile(r"/create/tasks/[0-9a-f-]{36}$")


@pytest.fixture(scope="module")
def plan_portal(
    ui_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = ui_settings.model_copy(
        update={
            "runtime_enabled": False,
            "data_dir": tmp_path_factory.mktemp("plan-portal"),
            "celery_queue": f"ui-plan-{uuid.uuid4().hex[:8]}",
        }
    )
    portal, server, thread = start_live_server(settings)
    workers = Workers(settings, tmp_path_factory.mktemp("plan-worker-logs"))
    workers.start(beat=False, concurrency=1)
    yield portal
    workers.stop_all()
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def plan_page(browser: Browser, plan_portal: LiveServer) -> Iterator[Page]:
    truncate_all(plan_portal.settings)
    context = browser.new_context(base_url=plan_portal.url, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/login?next=/")
    page.get_by_label("API token").fill(BOOTSTRAP_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/$"))
    yield page
    context.close()


def _create(page: Page, name: str) -> None:
    page.goto("/create/templates/default/rag-service")
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")
    page.locator('[name="p0[name]"]').fill(name)
    page.locator('[name="p0[owner]"]').select_option(label="team-a")
    for step in ("Step 2 of 5", "Step 3 of 5", "Step 4 of 5", "Step 5 of 5: Review"):
        page.get_by_role("button", name="Next").click()
        expect(page.locator("#progress")).to_contain_text(step)
    expect(page.locator("#review-status")).to_contain_text("Ready to create")
    page.get_by_role("button", name="Create").click()
    expect(page).to_have_url(TASK_URL, timeout=30_000)
    expect(page.locator("#task-status")).to_have_text(
        re.compile("^(completed|failed)$"), timeout=120_000
    )
    assert page.locator("#task-status").inner_text() == "completed", page.locator(
        "#log"
    ).inner_text()


def _factory(settings: Settings):  # type: ignore[no-untyped-def]
    from portal_backend.db import make_engine, make_session_factory

    return make_session_factory(make_engine(settings.database_url))


def test_a_planned_service_says_why_offers_next_steps_and_frees_its_name(
    plan_page: Page, plan_portal: LiveServer
) -> None:
    settings = plan_portal.settings
    factory = _factory(settings)
    seed(factory, groups())
    register_shipped_templates(settings, factory)
    page = plan_page
    _create(page, NAME)

    # Point 2: the deploy step applied nothing, and the task page says so (not green).
    steps = page.get_by_role("list", name="Steps")
    deploy = steps.locator('[data-step="provision"]')
    expect(deploy.locator("[data-step-status]")).to_have_text("skipped: no cluster")
    expect(deploy.locator(".badge.completed")).to_have_count(0)
    expect(deploy).to_contain_text("local runtime is off")
    expect(page.locator("#nothing-deployed")).to_contain_text("Nothing runs yet")
    snap(page, "task-planned")
    page.get_by_role("link", name="Deploy it from its page").click()

    # The service says why it is Planned and what to do about it.
    expect(page).to_have_url(re.compile(f"/catalog/default/component/{NAME}/deployment$"))
    expect(page.locator("#deployment-state")).to_have_text("Planned")
    expect(page.locator("#deployment-why")).to_contain_text(
        "no Kubernetes cluster is configured and the local runtime is off"
    )
    expect(page.locator("#deployment-todo")).to_contain_text("RAGPORTAL_RUNTIME_ENABLED=true")
    snap(page, "entity-planned")

    # Point 3: not stuck. Re-provision runs again (a task, not a 409) ...
    page.get_by_role("button", name="Re-provision").click()
    expect(page).to_have_url(TASK_URL)
    expect(page.locator("#task-status")).to_have_text("completed", timeout=60_000)
    expect(page.get_by_role("list", name="Steps")).to_contain_text("skipped: no cluster")

    # ... and Delete offers to archive or remove the repository, which frees the name.
    page.goto(f"/catalog/default/component/{NAME}")
    page.get_by_role("link", name="Delete service…").click()
    expect(page.get_by_label(re.compile("Archive it"))).to_be_checked()
    page.get_by_label(re.compile("Remove it")).check()
    page.get_by_label(f"Type {NAME} to confirm").fill(NAME)
    snap(page, "entity-delete")
    page.get_by_role("button", name="Delete service").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Service {NAME} deleted; its repository was removed, so the name is free again"
    )
    assert not local_repos.repo_path(settings, "team-a", NAME).exists()

    # The same name again: the review says the server accepts it, and the create works.
    _create(page, NAME)
    expect(
        page.get_by_role("list", name="Output links").get_by_role("link", name="Repository")
    ).to_have_attribute("href", f"/repos/team-a/{NAME}")


def test_a_planned_service_on_a_portal_that_can_run_it_offers_the_local_runtime(
    page: Page, ui_db, ui_token
) -> None:
    """With the local runtime on (the default), the Planned service's Deploy goes there."""
    seed(ui_db, groups() + rag_service("later-bot"))
    set_status(
        ui_db,
        "component:default/later-bot",
        "deployment",
        {
            "state": "Planned",
            "target": "plan",
            "message": "a plan was asked for (target plan), so nothing was applied",
            "objects": [{"kind": "Deployment", "name": "later-bot-vllm", "state": "Planned"}],
        },
    )
    page.goto("/login?next=/catalog/default/component/later-bot/deployment")
    page.get_by_label("API token").fill(ui_token("write", group="group:default/team-a"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#deployment-why")).to_contain_text("a plan was asked for")
    target = page.get_by_label("Deploy to")
    expect(target.locator("option:checked")).to_have_text("Local runtime (this machine, CPU)")
    expect(page.get_by_role("button", name="Deploy", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Re-provision")).to_be_visible()
    # The planned objects list what would run, without an empty Reason column.
    table = page.get_by_role("table")
    expect(table.locator("th")).to_have_text(["Object", "State"])
    # A reader of another group sees the state and why, not the buttons.
    page.context.clear_cookies()
    page.goto("/login?next=/catalog/default/component/later-bot/deployment")
    page.get_by_label("API token").fill(ui_token("write", group="group:default/team-b"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#deployment-why")).to_be_visible()
    expect(page.get_by_role("button", name="Re-provision")).to_have_count(0)
