"""A newcomer on a fresh portal (no cluster), from nothing to a service that answers,
without a terminal: create a team, register an existing component, create a RAG service
from the form, watch it deploy to the local runtime, ask it. Then the service's pages
(tabs, repository browser, docs), and every page at desktop and phone size with axe-core.

One service is created for the whole module (a local-runtime start costs 30-60 s on two
cores): the journey runs once, as a module fixture, and the tests read what it left.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from portal_backend.git_hosts import local_repos
from portal_backend.scaffolder.registration import register_shipped_templates
from portal_backend.settings import Settings
from tests.conftest import BOOTSTRAP_TOKEN, LiveServer, truncate_all
from tests.ui.accessibility import check_page
from tests.ui.conftest import ARTIFACTS, login, snap

TEAM, TEAM_TITLE = "support", "Support team"
SERVICE = "docs-bot"
ENTITY = f"/catalog/default/component/{SERVICE}"
TASK_URL = re.compile(r"/create/tasks/[0-9a-f-]{36}$")
REGISTERED = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: billing-api
  title: Billing API
  description: Invoices and payments, registered from an existing catalog-info.yaml.
spec:
  type: service
  lifecycle: production
  owner: group:default/support
"""


@dataclass
class Journey:
    page: Page
    portal: LiveServer
    task_url: str = ""
    repository_href: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


def _register_file(settings: Settings) -> Path:
    """An existing component's catalog-info.yaml, under the portal's allowed file root."""
    path = settings.data_dir / "imports" / "billing" / "catalog-info.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(REGISTERED)
    return path


def _wait_completed(page: Page, timeout: float) -> None:
    status = page.locator("#task-status")
    expect(status).to_have_text(re.compile("^(completed|failed|cancelled)$"), timeout=timeout)
    if status.inner_text() != "completed":
        snap(page, "journey-task-not-completed")
        raise AssertionError(
            f"task {status.inner_text()}:\n{page.get_by_role('list', name='Steps').inner_text()}"
            f"\n{page.locator('#log').inner_text()}"
        )


@pytest.fixture(scope="module")
def journey(browser: Browser, _ui_server: LiveServer, worker: Any) -> Iterator[Journey]:
    truncate_all(_ui_server.settings)  # a fresh portal: no team, no component, no task
    register_shipped_templates(_ui_server.settings, _make_factory(_ui_server.settings))
    context = browser.new_context(base_url=_ui_server.url, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    walk = Journey(page, _ui_server)
    login(page, BOOTSTRAP_TOKEN)

    # Home says where to start; the catalog has no team, and says so.
    start = page.get_by_role("region", name="Getting started")
    expect(start.get_by_role("link", name="Create a team")).to_be_visible()
    snap(page, "journey-home-fresh")
    page.get_by_role("link", name="Catalog", exact=True).click()
    expect(page.locator("#no-team")).to_contain_text("No team yet")

    # 1. Create a team: a Group in the catalog, from a form.
    page.locator("#no-team").get_by_role("link", name="Create a team").click()
    page.get_by_label("Name", exact=True).fill(TEAM)
    page.get_by_label("Display name (optional)").fill(TEAM_TITLE)
    page.get_by_role("button", name="Create team").click()
    expect(page.get_by_role("status")).to_contain_text(f"Team {TEAM} created")
    expect(page).to_have_url(re.compile(r"/catalog\?"))

    # 2. Register an existing component: analyze a file, preview, import.
    target = _register_file(_ui_server.settings)
    page.get_by_role("link", name="Register existing component").click()
    page.get_by_label("File on this server").check()
    page.get_by_label("URL or path").fill(str(target))
    page.get_by_role("button", name="Analyze").click()
    preview = page.locator("#preview")
    expect(preview.get_by_role("table")).to_contain_text("Billing API")
    expect(preview.get_by_role("table")).to_contain_text("support")
    snap(page, "journey-register-preview")
    page.get_by_role("button", name="Import").click()
    imported = page.locator("#imported")
    expect(imported).to_contain_text("Registered 1 entity")
    imported.get_by_role("link", name="Billing API").click()
    expect(page.get_by_role("heading", name="Billing API", level=1)).to_be_visible()
    expect(page.locator(".header-labels")).to_contain_text(TEAM_TITLE)

    # 3. Create a RAG service: the owner is offered by its title.
    page.get_by_role("link", name="Create", exact=True).click()
    started = time.monotonic()
    page.get_by_role("link", name="Choose Create RAG service").click()
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")
    walk.notes["form_ready_s"] = round(time.monotonic() - started, 2)
    expect(page.locator("#no-team")).to_have_count(0)
    page.locator('[name="p0[name]"]').fill(SERVICE)
    page.locator('[name="p0[owner]"]').select_option(label=TEAM_TITLE)
    for step in ("Step 2 of 5", "Step 3 of 5", "Step 4 of 5", "Step 5 of 5: Review"):
        page.get_by_role("button", name="Next").click()
        expect(page.locator("#progress")).to_contain_text(step)
    expect(page.locator("#review-status")).to_contain_text("Ready to create")
    snap(page, "journey-review")
    started = time.monotonic()
    page.get_by_role("button", name="Create").click()

    # 4. The task page follows the task live, then links to what it made.
    expect(page).to_have_url(TASK_URL, timeout=30_000)
    walk.task_url = page.url
    page.evaluate("window.__sameDocument = true")
    _wait_completed(page, 300_000)
    walk.notes["create_to_completed_s"] = round(time.monotonic() - started, 2)
    assert page.evaluate("window.__sameDocument === true"), "the task page reloaded"
    walk.notes["steps"] = page.get_by_role("list", name="Steps").inner_text()
    walk.notes["finished"] = page.locator("#task-finished").inner_text()
    outputs = page.get_by_role("list", name="Output links")
    walk.repository_href = (
        outputs.get_by_role("link", name="Repository").get_attribute("href") or ""
    )
    snap(page, "journey-task-completed")
    outputs.get_by_role("link", name="Open in catalog").click()
    expect(page).to_have_url(re.compile(f"{ENTITY}$"))

    # 5. It runs on this machine; ask it from its Ask tab.
    page.get_by_role("link", name="Deployment", exact=True).click()
    expect(page.locator("#deployment-state")).to_have_text("Healthy")
    expect(page.locator("#deployment-where")).to_contain_text("Local runtime")
    page.get_by_role("link", name="Ask", exact=True).click()
    page.get_by_label("Question").fill(
        "What does the assistant do when no document passage is relevant?"
    )
    page.get_by_role("button", name="Ask", exact=True).click()
    answer = page.locator("#ask-answer")
    expect(answer).to_be_visible(timeout=180_000)
    walk.notes["citations"] = answer.get_by_role("list", name="Citations").inner_text()
    walk.notes["figures"] = page.locator("#ask-figures").inner_text()
    snap(page, "journey-ask")
    yield walk
    context.close()


def _make_factory(settings: Settings) -> Any:
    from portal_backend.db import make_engine, make_session_factory

    return make_session_factory(make_engine(settings.database_url))


def test_fresh_portal_to_an_answering_service_without_a_terminal(journey: Journey) -> None:
    """Issue 17, point 1 end to end: nothing had to be typed into a terminal."""
    steps = journey.notes["steps"]
    assert "Deploy" in steps and "skipped" not in steps, steps
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d", journey.notes["finished"])
    assert "getting-started.md" in journey.notes["citations"]
    assert re.search(r"\d+ ms · \d+ tokens", journey.notes["figures"])
    page = journey.page
    # Its usage reached the portal: the SLA & cost tab counts the question.
    for _ in range(30):
        page.goto(f"{ENTITY}/sla?window=1h")
        if page.locator("#sla-success").count():
            break
        page.wait_for_timeout(1000)
    expect(page.locator("#sla-success")).to_be_visible()
    page.goto("/")
    mine = page.get_by_role("region", name="My services")
    expect(mine.get_by_role("link", name=SERVICE)).to_be_visible()
    expect(page.get_by_role("region", name="Getting started")).to_have_count(0)


def test_repository_link_opens_the_portals_repository_browser(journey: Journey) -> None:
    """Point 6: the task's Repository link was file:// (dead from an http page) and the
    entity said "Repository —". Both open the repository browser now."""
    page = journey.page
    assert journey.repository_href == f"/repos/{TEAM}/{SERVICE}", journey.repository_href
    page.goto(ENTITY)
    expect(page.locator("#repo-link")).to_have_attribute("href", journey.repository_href)
    page.locator("#repo-link").click()
    expect(page.get_by_role("heading", name=f"{TEAM}/{SERVICE}", level=1)).to_be_visible()
    files = page.locator("#files")
    expect(files.get_by_role("link", name="catalog-info.yaml")).to_be_visible()
    # The README, rendered (a heading, not "# ..." text).
    readme = page.locator("#readme")
    expect(readme.locator("h1, h2").nth(1)).to_be_visible()
    assert "# " not in readme.locator("h1").first.inner_text()
    files.get_by_role("link", name="catalog-info.yaml").click()
    expect(page.locator("#file")).to_contain_text(f"name: {SERVICE}")
    page.get_by_role("link", name="Commits", exact=True).click()
    expect(page.locator("#commit-log")).to_contain_text("Initial commit")
    # The endpoint is this machine's (reachable from the browser), not a cluster address.
    page.goto(ENTITY)
    expect(page.locator("#endpoint-link")).to_have_attribute(
        "href", re.compile(r"^http://127\.0\.0\.1:\d+$")
    )


def _push_docs(settings: Settings) -> None:
    """What a team does with its repository: clone, write docs/, push."""
    bare = local_repos.repo_path(settings, TEAM, SERVICE)
    work = settings.data_dir / "docs-clone"
    env_args = ["-c", "user.name=Newcomer", "-c", "user.email=newcomer@example.test"]
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
    (work / "docs" / "index.md").write_text(
        "# Support handbook\n\nHow we answer tickets. See [the escalation guide](escalation.md)."
        "\n\n| Severity | First answer |\n| --- | --- |\n| high | 1 hour |\n"
    )
    (work / "docs" / "escalation.md").write_text("# Escalation\n\nCall the on-duty engineer.\n")
    subprocess.run(["git", "-C", str(work), "add", "docs"], check=True)
    subprocess.run(["git", "-C", str(work), *env_args, "commit", "-qm", "Docs"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD:main"], check=True)


def test_service_tabs_backstage_style(journey: Journey) -> None:
    """Point 8 on a real service: header band (kind, type, owner, lifecycle), one tab per
    concern, annotations folded away, the graph on the Overview; plus the API, Docs and
    Dependencies tabs."""
    page = journey.page
    page.goto(ENTITY)
    header = page.locator(".page-header")
    expect(header).to_contain_text("Component — rag-service")
    expect(header.locator(".header-labels")).to_contain_text(TEAM_TITLE)
    expect(header.locator(".header-labels")).to_contain_text("production")
    sections = page.get_by_role("navigation", name=f"{SERVICE} sections")
    tabs = sections.get_by_role("link")
    expect(tabs).to_have_text(
        ["Overview", "Deployment", "SLA & cost", "Evaluation", "Scorecard", "Ask", "API",
         "Docs", "Dependencies"]
    )  # fmt: skip
    expect(page.get_by_role("group", name=f"Relation graph of {SERVICE}")).to_be_visible()
    expect(page.locator("#annotations")).not_to_have_attribute("open", "")
    annotation = page.locator("#annotations code", has_text="backstage.io/managed-by-location")
    expect(annotation).to_be_hidden()
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 1800, f"the overview is {height}px tall at 1440x900"

    sections.get_by_role("link", name="API", exact=True).click()
    operations = page.locator("table.operations").first
    expect(operations).to_contain_text("/query")
    sections.get_by_role("link", name="Dependencies", exact=True).click()
    expect(page.get_by_role("table").first).to_contain_text(f"{SERVICE}-model-server")

    # Docs: docs/ is empty at first (the README stands in); pages pushed there render.
    sections.get_by_role("link", name="Docs", exact=True).click()  # not the sidebar's
    expect(page.locator("#doc")).to_contain_text("holds no Markdown page yet")
    _push_docs(journey.portal.settings)
    page.reload()
    nav = page.get_by_role("navigation", name="Documentation pages")
    expect(nav.get_by_role("list").get_by_role("link")).to_have_text(["Escalation", "Overview"])
    expect(nav.get_by_role("link", name="docs/ in the repository")).to_have_attribute(
        "href", f"/repos/{TEAM}/{SERVICE}/tree/main/docs"
    )
    doc = page.locator("#doc")
    expect(doc.get_by_role("heading", name="Support handbook")).to_be_visible()
    expect(doc.get_by_role("table")).to_contain_text("1 hour")
    doc.get_by_role("link", name="the escalation guide").click()
    expect(page).to_have_url(re.compile(r"/docs\?page=docs/escalation\.md"))
    expect(doc.get_by_role("heading", name="Escalation")).to_be_visible()
    snap(page, "entity-docs")
    page.goto("/techdocs")
    expect(page.locator("#docs-index").get_by_role("link", name=SERVICE)).to_be_visible()


def test_every_page_at_desktop_and_phone_size_passes_axe(
    journey: Journey, browser: Browser
) -> None:
    """Screenshots of every page at 1440x900 and 390x844 (tests/artifacts/ui), and no
    serious or critical axe-core violation on any of them."""
    page = journey.page
    problems: dict[str, list[dict[str, Any]]] = {}
    pages = {
        "home": "/",
        "catalog": "/catalog",
        "catalog-import": "/catalog-import",
        "team-new": "/teams/new",
        "group": f"/catalog/default/group/{TEAM}",
        "component-registered": "/catalog/default/component/billing-api",
        "delete": f"{ENTITY}/delete",
        "create": "/create",
        "tasks": "/tasks",
        "templates": "/templates",
        "techdocs": "/techdocs",
        "repos": "/repos",
        "repo": f"/repos/{TEAM}/{SERVICE}",
        "repo-file": f"/repos/{TEAM}/{SERVICE}/blob/main/README.md",
        "repo-commits": f"/repos/{TEAM}/{SERVICE}/commits/main",
        "admin": "/admin",
        "error-404": "/no/such/page",
    }
    for tab in ("", "/deployment", "/sla", "/evaluation", "/ask", "/api", "/docs",
                "/dependencies"):  # fmt: skip
        pages[f"entity{tab.replace('/', '-') or '-overview'}"] = ENTITY + tab
    load_ms: dict[str, float] = {}
    for name, path in pages.items():
        page.goto(path)
        load_ms[name] = round(
            page.evaluate("performance.getEntriesByType('navigation')[0].duration"), 1
        )
        check_page(page, name, problems)
    # Figures for the record (tests/artifacts/ui/timings.json): each page's load in the
    # browser, the form's time to ready and the create task's run, on this machine.
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(
        json.dumps(
            {
                "page_load_ms": load_ms,
                "form_ready_s": journey.notes.get("form_ready_s"),
                "create_to_completed_s": journey.notes.get("create_to_completed_s"),
            },
            indent=2,
        )
    )
    page.goto(journey.task_url)
    check_page(page, "task", problems)
    # The create form: first page, the sizing page, the review.
    page.goto("/create/templates/default/rag-service")
    expect(page.locator("#wizard")).to_have_attribute("data-ready", "true")
    check_page(page, "create-form", problems)
    page.locator('[name="p0[name]"]').fill("another-bot")
    page.locator('[name="p0[owner]"]').select_option(label=TEAM_TITLE)
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#sizing")).to_contain_text("Fits")
    check_page(page, "create-sizing", problems)
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#review-status")).to_contain_text("Ready to create")
    check_page(page, "create-review", problems)
    # Signed out: the login page.
    context = browser.new_context(base_url=journey.portal.url)
    try:
        signed_out = context.new_page()
        signed_out.goto("/login")
        check_page(signed_out, "login", problems)
    finally:
        context.close()
    assert not problems, "\n".join(
        f"{name}: {v['impact']} {v['id']} ({v['help']}): {v['nodes']}"
        for name, found in problems.items()
        for v in found
    )
