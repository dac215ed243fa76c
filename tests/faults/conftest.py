"""Fault fixtures: a PostgreSQL server of the test's own (initdb into a temporary
folder, its own port), which a test may stop, start and restart; and a portal on it.

The shared servers (PostgreSQL on 5432, Redis on 6379) serve every other test running
on the machine, so a fault test never restarts them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from portal_backend.db import upgrade_database
from portal_backend.settings import Settings
from tests.conftest import BOOTSTRAP_TOKEN, LiveServer, free_port, start_live_server


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        found = [Path(p) for p in [shutil.which("pg_ctl")] if p]
    assert found, "PostgreSQL's server binaries (pg_ctl, initdb) are needed"
    return found[-1].parent


def _as_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


@dataclass
class PrivatePostgres:
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/test"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            _as_owner([str(_postgres_bin() / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-w", "-l", str(self.data / "server.log"), "-o", options, "start")

    def stop(self) -> None:
        """A fast shutdown: every open connection is terminated, as in a restart."""
        self._ctl("-w", "-m", "fast", "stop")

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def restart_in_background(self, down_s: float) -> threading.Thread:
        """Stops now; starts again ``down_s`` later, while the caller carries on."""
        self.stop()
        thread = threading.Thread(target=lambda: (time.sleep(down_s), self.start()))
        thread.start()
        return thread


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    root = Path(tempfile.mkdtemp(prefix="ragportal-faults-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(
        _as_owner(
            [str(_postgres_bin() / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
            + ["--no-sync", "-E", "UTF8"]
        ),
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=120,
    )
    server = PrivatePostgres(data, free_port())
    server.start()
    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{server.port}/postgres", autocommit=True
    ) as conn:
        conn.execute("CREATE DATABASE test")
    yield server
    try:
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fresh_database(private_postgres: PrivatePostgres) -> str:
    """The private server's ``test`` database, emptied (schema recreated) for this test."""
    with psycopg.connect(private_postgres.url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return private_postgres.url


@pytest.fixture
def portal_on_private_postgres(
    fresh_database: str, tmp_path: Path
) -> Iterator[tuple[LiveServer, Settings]]:
    """A live portal whose database is the private PostgreSQL server (files may be
    registered from ``tmp_path``)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url_override=fresh_database,
        bootstrap_token=BOOTSTRAP_TOKEN,
        log_json=False,
        log_level="WARNING",
        allowed_file_roots=[tmp_path],
        catalog_refresh_interval_s=0,
        runtime_enabled=False,
    )
    upgrade_database(settings)
    live, server, thread = start_live_server(settings)
    yield live, settings
    server.should_exit = True
    thread.join(timeout=10)
