"""Browser fixtures: one Debian Chromium per test session, driven by Playwright.

`playwright install` cannot download browsers here, so Playwright launches the system
Chromium (scripts/setup.d/40-chromium.sh installs it). Screenshots of every page a test
visits go to tests/artifacts/ui/ (git-ignored).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import BOOTSTRAP_TOKEN, LiveServer

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session", params=["postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    # The browser suite exercises pages, not storage: the domain services under them are
    # tested on both databases by their own suites. One backend keeps CI time in budget.
    return request.param


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
