"""Browser fixtures: one Debian Chromium per test session, driven by Playwright.

`playwright install` cannot download browsers here, so Playwright launches the system
Chromium (scripts/setup.d/40-chromium.sh installs it). Screenshots of every page a test
visits go to tests/artifacts/ui/ (git-ignored).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from portal_backend.db import upgrade_database
from portal_backend.settings import Settings
from tests.conftest import BOOTSTRAP_TOKEN, REDIS_URL, LiveServer, make_settings
from tests.scaffolder.conftest import FAST, Workers

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
UI_TEMPLATES = Path(__file__).resolve().parent / "templates"
QUEUE = f"ui-test-{uuid.uuid4().hex[:10]}"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session", params=["postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    # The browser suite exercises pages, not storage: the domain services under them are
    # tested on both databases by their own suites. One backend keeps CI time in budget.
    return request.param


@pytest.fixture(scope="session")
def migrated_settings(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Settings:
    """The live portal of the browser tests: real Redis queue unique to this session, so
    the create flow runs on a real worker process (started only by tests that need it)."""
    schema = request.getfixturevalue("postgres_schema") if backend == "postgresql" else None
    settings = make_settings(
        backend,
        tmp_path_factory.mktemp(f"ui-{backend}"),
        schema,
        redis_url=REDIS_URL,
        celery_queue=QUEUE,
        scaffolder_trusted_template_roots=[UI_TEMPLATES],
        **FAST,
    )
    upgrade_database(settings)
    return settings


@pytest.fixture(scope="session")
def worker(
    migrated_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    """One real `ragportal worker --beat` process on this session's queue."""
    workers = Workers(migrated_settings, tmp_path_factory.mktemp("ui-worker-logs"))
    workers.start(beat=True, concurrency=1)
    yield workers
    workers.stop_all()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("chromium not found: run scripts/setup.d/40-chromium.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


def login(page: Page, token: str = BOOTSTRAP_TOKEN, next_path: str = "/") -> None:
    page.goto(f"/login?next={next_path}")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(next_path.split("?")[0])))


def snap(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
