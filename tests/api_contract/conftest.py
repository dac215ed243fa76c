"""A portal for the contract run: served over real HTTP on each database, with a task
queue that only records what it is handed (no worker runs the tasks schemathesis
submits) and no runtime, cluster or network beyond 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from portal_backend.db import upgrade_database
from portal_backend.scaffolder.engine import Dispatch
from portal_backend.settings import Settings
from tests.conftest import LiveServer, make_settings, start_live_server


class RecordingQueue:
    """A ``TaskQueue`` that keeps the ids of the tasks dispatched to it."""

    def __init__(self) -> None:
        self.dispatched: list[str] = []

    def dispatch(self) -> Dispatch:
        return self.dispatched.append

    def run_worker(self, *, concurrency: int, beat: bool, pool: str) -> None:
        raise NotImplementedError

    def run_beat(self) -> None:
        raise NotImplementedError


@pytest.fixture(scope="module")
def contract_portal(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[LiveServer]:
    schema = request.getfixturevalue("postgres_schema") if backend == "postgresql" else None
    settings: Settings = make_settings(
        backend,
        tmp_path_factory.mktemp(f"contract-{backend}"),
        schema,
        runtime_enabled=False,
        catalog_refresh_interval_s=0,
    )
    upgrade_database(settings)
    live, server, thread = start_live_server(settings, task_queue=RecordingQueue())
    yield live
    server.should_exit = True
    thread.join(timeout=10)
