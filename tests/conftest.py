"""Shared fixtures: both databases, a live portal over real HTTP, tokens.

Every test that touches the database runs twice: on SQLite and on the real PostgreSQL
(``RAGPORTAL_TEST_POSTGRES_URL``, default 127.0.0.1:5432 database ``test``). Each test
session gets its own PostgreSQL schema, so parallel runs never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import text

from portal_backend.app import create_app
from portal_backend.auth.service import create_token
from portal_backend.db import make_engine, make_session_factory, session_scope, upgrade_database
from portal_backend.models import metadata
from portal_backend.settings import Settings
from portal_backend.task_queue import TaskQueue

POSTGRES_URL = os.environ.get(
    "RAGPORTAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("RAGPORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BOOTSTRAP_TOKEN = "test-bootstrap-admin-token"
BACKENDS = ["sqlite", "postgresql"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def fresh_postgres_schema(prefix: str = "t") -> Iterator[str]:
    """A new, empty schema in the test database, dropped on exit. A portal whose worker
    processes run (with a recovery sweep) needs its own: workers sweep every task of their
    database, so a second portal's tasks in the same schema would be run by the first
    portal's workers, with the first portal's data_dir."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the test database for this pytest session, dropped at the end."""
    with fresh_postgres_schema() as schema:
        yield schema


def postgres_url_for(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


def make_settings(
    backend: str, data_dir: Path, postgres_schema: str | None, **overrides
) -> Settings:
    values: dict = {
        "data_dir": data_dir,
        "bootstrap_token": BOOTSTRAP_TOKEN,
        "log_json": False,
        "log_level": "WARNING",
    }
    if backend == "postgresql":
        assert postgres_schema is not None
        values["database_url_override"] = postgres_url_for(postgres_schema)
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def migrated_settings(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Settings:
    """Settings for one backend with the schema at head (once per session and backend)."""
    schema = request.getfixturevalue("postgres_schema") if backend == "postgresql" else None
    settings = make_settings(backend, tmp_path_factory.mktemp(f"data-{backend}"), schema)
    upgrade_database(settings)
    return settings


def truncate_all(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    engine.dispose()


@pytest.fixture
def settings(migrated_settings: Settings) -> Iterator[Settings]:
    """Migrated settings with every table emptied before the test."""
    truncate_all(migrated_settings)
    yield migrated_settings


@pytest.fixture
def session_factory(settings: Settings):  # type: ignore[no-untyped-def]
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


@dataclass
class LiveServer:
    url: str
    settings: Settings
    app: object

    def client(self, token: str | None = BOOTSTRAP_TOKEN, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # threads cannot own signal handlers
        pass


def start_live_server(
    settings: Settings, port: int | None = None, task_queue: TaskQueue | None = None
) -> tuple[LiveServer, _Server, threading.Thread]:
    """The portal on 127.0.0.1 (on ``port``, e.g. to restart it where clients know it;
    ``task_queue``: where submitted tasks go, by default the installed Celery queue)."""
    app = create_app(settings, task_queue=task_queue)
    port = port or free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("portal test server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", settings, app), server, thread


@pytest.fixture(scope="session")
def _live_server_session(migrated_settings: Settings) -> Iterator[LiveServer]:
    live, server, thread = start_live_server(migrated_settings)
    yield live
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def live_server(_live_server_session: LiveServer, settings: Settings) -> LiveServer:
    """The portal served over real HTTP on 127.0.0.1, tables emptied before each test."""
    return _live_server_session


@pytest.fixture
def admin_client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


@pytest.fixture
def anon_client(live_server: LiveServer) -> Iterator[httpx.Client]:
    with live_server.client(token=None) as client:
        yield client


@pytest.fixture
def make_token(session_factory):  # type: ignore[no-untyped-def]
    """Creates a real API token in the database and returns its plain value."""

    def _make(scope: str, subject: str = "user:default/tester", group: str | None = None) -> str:
        with session_scope(session_factory) as session:
            return create_token(
                session, name=f"{scope}-token", scope=scope, subject=subject, owner_group=group
            ).token

    return _make


def table_names(settings: Settings) -> set[str]:
    engine = make_engine(settings.database_url)
    with engine.connect() as connection:
        if settings.is_sqlite:
            rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        else:
            rows = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            )
        names = {r[0] for r in rows}
    engine.dispose()
    return names


CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One Debian Chromium per test session, for every suite that drives pages (tests/ui,
    tests/auth). One instance on purpose: Playwright's sync API keeps its event loop
    marked as running in the main thread while it is open, so a second sync_playwright()
    in the same session refuses to start."""
    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("chromium not found: run scripts/setup.d/40-chromium.sh")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def remove_local_services(settings: Settings, logs_to: Path | None = None) -> None:
    """Removes every service the local runtime runs under ``settings``' data folder (its
    processes, ports and folder): nothing a test started may outlive it. ``logs_to``
    keeps a copy of each service's logs (what a failure shows)."""
    from portal_backend.provisioning.local.runtime import LocalRuntime

    root = settings.data_dir / "runtime" / "services"
    if not root.exists():
        return
    engine = make_engine(settings.database_url)
    try:
        runtime = LocalRuntime(settings, make_session_factory(engine))
        for folder in root.glob("*"):
            if logs_to is not None and (folder / "logs").exists():
                shutil.copytree(folder / "logs", logs_to / folder.name)
            runtime.remove(folder.name)
    finally:
        engine.dispose()
