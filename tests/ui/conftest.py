"""Browser fixtures: one Debian Chromium per test session, driven by Playwright.

`playwright install` cannot download browsers here, so Playwright launches the system
Chromium (scripts/setup.d/40-chromium.sh installs it). Screenshots of every page a test
visits go to tests/artifacts/ui/ (git-ignored).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import sessionmaker

from portal_backend.auth.service import create_token
from portal_backend.db import make_engine, make_session_factory, session_scope, upgrade_database
from portal_backend.settings import Settings
from tests.conftest import (
    BOOTSTRAP_TOKEN,
    POSTGRES_URL,
    REDIS_URL,
    LiveServer,
    make_settings,
    remove_local_services,
    start_live_server,
    truncate_all,
)
from tests.rag_template.conftest import VENV, generated_venv  # noqa: F401
from tests.scaffolder.conftest import FAST, Workers

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "ui"
UI_TEMPLATES = Path(__file__).resolve().parent / "templates"
QUEUE = f"ui-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def ui_settings(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    """Settings of the browser suite's own portal: its own PostgreSQL schema, and a Redis
    queue unique to this session so the create flow runs on a real worker process.

    The pages are tested on PostgreSQL only (one browser, one backend): the services under
    them are tested on both databases by their own suites, and CI time is shared. Own
    fixture names (not live_server/settings) keep it apart from the parametrized ones.
    """
    schema = f"ui_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    # A service created from the form runs on the local runtime, in the environment the
    # setup step built (build/runtime-envs).
    request.getfixturevalue("generated_venv")
    settings = make_settings(
        "postgresql",
        tmp_path_factory.mktemp("ui-data"),
        schema,
        redis_url=REDIS_URL,
        celery_queue=QUEUE,
        scaffolder_trusted_template_roots=[UI_TEMPLATES],
        runtime_envs_dir=VENV.resolve().parent,
        **FAST,
    )
    upgrade_database(settings)
    yield settings
    remove_local_services(settings)
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def _ui_server(ui_settings: Settings) -> Iterator[LiveServer]:
    live, server, thread = start_live_server(ui_settings)
    yield live
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def live_portal(_ui_server: LiveServer) -> LiveServer:
    """The browser suite's portal over real HTTP, every table emptied before the test.
    Services an earlier test left running are removed first: a later test's portal would
    otherwise share the machine with their LLM and API processes until the session ends."""
    remove_local_services(_ui_server.settings)
    truncate_all(_ui_server.settings)
    return _ui_server


@pytest.fixture
def ui_db(live_portal: LiveServer) -> Iterator[sessionmaker]:
    engine = make_engine(live_portal.settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def ui_token(ui_db: sessionmaker):  # type: ignore[no-untyped-def]
    """A real API token in the suite's database; returns its plain value."""

    def make(scope: str, subject: str = "user:default/tester", group: str | None = None) -> str:
        with session_scope(ui_db) as session:
            return create_token(
                session, name=f"{scope}-token", scope=scope, subject=subject, owner_group=group
            ).token

    return make


@pytest.fixture(scope="session")
def worker(_ui_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """One real `ragportal worker --beat` process on this session's queue and schema; the
    services it deploys locally push their usage to this portal."""
    settings = _ui_server.settings.model_copy(update={"runtime_portal_url": _ui_server.url})
    workers = Workers(settings, tmp_path_factory.mktemp("ui-worker-logs"))
    workers.start(beat=True, concurrency=1)
    yield workers
    workers.stop_all()


@pytest.fixture
def page(browser: Browser, live_portal: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=live_portal.url, viewport={"width": 1440, "height": 900})
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
