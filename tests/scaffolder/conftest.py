"""Scaffolder fixtures: a live portal using the test template, and real worker processes.

Workers are ``ragportal worker`` processes (real Celery, real Redis on 127.0.0.1:6379)
configured through environment variables that point at the test database and a queue
name unique to this pytest session, so parallel runs never take each other's work.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from pydantic import TypeAdapter

from portal_backend.db import upgrade_database
from portal_backend.settings import Settings
from tests.conftest import (
    BOOTSTRAP_TOKEN,
    REDIS_URL,
    LiveServer,
    fresh_postgres_schema,
    make_settings,
    start_live_server,
    truncate_all,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_TEMPLATES = REPO_ROOT / "tests" / "fixtures" / "templates"
SESSION_QUEUE = f"scaffolder-test-{uuid.uuid4().hex[:10]}"

# Short liveness timings so crash recovery is observable within a test.
FAST = {
    "scaffolder_heartbeat_s": 0.5,
    "scaffolder_stale_after_s": 3.0,
    "scaffolder_requeue_after_s": 4.0,
    "scaffolder_sweep_interval_s": 1.0,
}


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a ``ragportal`` process use exactly these settings: every
    setting that differs from its default, as pydantic-settings reads it back."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGPORTAL_")}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    defaults = Settings.model_construct()
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name not in ("data_dir", "templates_dir") and value == getattr(defaults, name, None):
            continue
        if value is None:
            continue
        env[f"RAGPORTAL_{name.upper()}"] = _env_value(value)
    # Workers log at INFO into their own files: what a failed test shows.
    env["RAGPORTAL_LOG_LEVEL"] = "INFO"
    env["DATABASE_URL"] = settings.database_url_override or settings.database_url
    env.pop("RAGPORTAL_DATABASE_URL_OVERRIDE", None)
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    env.pop("RAGPORTAL_REDIS_URL", None)
    return env


def _env_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(TypeAdapter(type(value)).dump_python(value, mode="json"))


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (a machine dying)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Workers:
    settings: Settings
    log_dir: Path
    started: list[Worker] = field(default_factory=list)

    def start(
        self, *, beat: bool = True, concurrency: int = 1, settings: Settings | None = None
    ) -> Worker:
        settings = settings or self.settings
        log = self.log_dir / f"worker-{len(self.started)}.log"
        command = [
            sys.executable,
            "-m",
            "portal_backend.cli",
            "worker",
            "--concurrency",
            str(concurrency),
        ]
        if beat:
            command.append("--beat")
        process = subprocess.Popen(
            command,
            env=self.environment(settings),
            cwd=REPO_ROOT,
            start_new_session=True,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        worker = Worker(process, log)
        self.started.append(worker)
        return worker

    def environment(self, settings: Settings) -> dict[str, str]:
        """The worker process's environment; suites with more settings extend it."""
        return settings_env(settings)

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture(scope="session")
def scaffolder_settings(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Its own PostgreSQL schema (on SQLite its own file): the session workers' recovery
    sweep runs every unfinished task of their database, so no other portal may share it."""
    own = fresh_postgres_schema("t_scaffolder") if backend == "postgresql" else nullcontext(None)
    with own as schema:
        settings = make_settings(
            backend,
            tmp_path_factory.mktemp(f"scaffolder-{backend}"),
            schema,
            templates_dir=FIXTURE_TEMPLATES,
            redis_url=REDIS_URL,
            celery_queue=f"{SESSION_QUEUE}-{backend}",
            **FAST,
        )
        upgrade_database(settings)
        yield settings


@pytest.fixture(scope="session")
def _scaffolder_server(scaffolder_settings: Settings) -> Iterator[LiveServer]:
    live, server, thread = start_live_server(scaffolder_settings)
    yield live
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def _session_workers(
    scaffolder_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    workers = Workers(scaffolder_settings, tmp_path_factory.mktemp("worker-logs"))
    workers.start(beat=True, concurrency=2)
    yield workers
    workers.stop_all()


def _reset(settings: Settings) -> None:
    """Empty tables and folders, then register the templates again as start-up does."""
    import shutil

    from portal_backend.db import make_engine, make_session_factory
    from portal_backend.scaffolder.registration import register_shipped_templates

    truncate_all(settings)
    for sub in ("repos", "workspaces"):
        shutil.rmtree(settings.data_dir / sub, ignore_errors=True)
    engine = make_engine(settings.database_url)
    register_shipped_templates(settings, make_session_factory(engine))
    engine.dispose()


@pytest.fixture
def portal(_scaffolder_server: LiveServer, _session_workers: Workers) -> Iterator[httpx.Client]:
    """Admin client on a live portal with two worker processes running."""
    _reset(_scaffolder_server.settings)
    with _scaffolder_server.client() as client:
        yield client


@dataclass
class IsolatedPortal:
    client: httpx.Client
    workers: Workers
    settings: Settings
    url: str


@pytest.fixture
def isolated_portal(backend: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A portal with its own database (file or schema) and queue, whose workers the test
    starts itself (to kill or restart them); ``start(redis_url)`` brings it up."""
    import psycopg

    from tests.conftest import POSTGRES_URL

    schema = None
    if backend == "postgresql":
        schema = f"t_iso_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    servers: list = []
    portals: list[IsolatedPortal] = []

    def start(redis_url: str = REDIS_URL) -> IsolatedPortal:
        data_dir = tmp_path / "data"
        data_dir.mkdir(exist_ok=True)
        settings = make_settings(
            backend,
            data_dir,
            schema,
            templates_dir=FIXTURE_TEMPLATES,
            redis_url=redis_url,
            celery_queue=f"{SESSION_QUEUE}-{uuid.uuid4().hex[:6]}",
            **FAST,
        )
        upgrade_database(settings)
        live, server, thread = start_live_server(settings)
        servers.append((server, thread))
        portal = IsolatedPortal(live.client(), Workers(settings, tmp_path), settings, live.url)
        portals.append(portal)
        return portal

    yield start
    for portal in portals:
        portal.workers.stop_all()
        portal.client.close()
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
    if schema:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def wait_for(predicate: Callable[[], object], timeout: float = 60, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def wait_status(
    client: httpx.Client, task_id: str, statuses: tuple[str, ...], timeout: float = 60
) -> dict:
    def check() -> dict | None:
        task = client.get(f"/api/scaffolder/v2/tasks/{task_id}").json()
        return task if task["status"] in statuses else None

    try:
        return wait_for(check, timeout)  # type: ignore[return-value]
    except AssertionError:
        task = client.get(f"/api/scaffolder/v2/tasks/{task_id}").json()
        events = client.get(f"/api/scaffolder/v2/tasks/{task_id}/events").json()
        raise AssertionError(f"task stuck in {task['status']}: {events}") from None


__all__ = ["BOOTSTRAP_TOKEN", "wait_for", "wait_status", "Workers", "settings_env"]


@pytest.fixture
def live_token_factory(_scaffolder_server: LiveServer, portal: httpx.Client):  # type: ignore[no-untyped-def]
    """Clients acting as other users (write-scoped API tokens created over the API)."""
    clients: list[httpx.Client] = []

    def make(subject: str) -> httpx.Client:
        created = portal.post(
            "/api/auth/tokens", json={"name": subject, "scope": "write", "subject": subject}
        )
        assert created.status_code == 201, created.text
        client = _scaffolder_server.client(created.json()["token"])
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def _clean_session_queues() -> Iterator[None]:
    """Leave nothing of this session's queues behind in the shared Redis."""
    yield
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{SESSION_QUEUE}*", count=1000))
    if keys:
        client.delete(*keys)
