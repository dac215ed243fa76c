"""The PostgreSQL connection pool survives connections the server dropped (restarts).

Each test kills its own pooled connection's server process with pg_terminate_backend,
which is what a database restart does to every pooled connection.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from portal_backend.db import make_engine, make_session_factory, session_scope
from portal_backend.settings import Settings
from tests.conftest import POSTGRES_URL

ENGINE_URL = Settings(database_url_override=POSTGRES_URL).database_url  # psycopg 3 driver


def _backend_pid(engine: Engine) -> int:
    with session_scope(make_session_factory(engine)) as session:
        return int(session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(pid: int) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, "backend did not exit"
            time.sleep(0.05)


def test_idle_pooled_connection_killed_by_the_server_is_replaced_without_an_error() -> None:
    engine = make_engine(ENGINE_URL, ping_after_idle_s=0.0)
    try:
        pid = _backend_pid(engine)
        _terminate(pid)
        # The checkout pings the idle connection, finds it dead and opens another.
        assert _backend_pid(engine) != pid
    finally:
        engine.dispose()


def test_connection_in_steady_use_is_not_pinged_and_a_drop_fails_only_once() -> None:
    engine = make_engine(ENGINE_URL, ping_after_idle_s=3600)
    try:
        pid = _backend_pid(engine)
        _backend_pid(engine)  # a second request reuses the same connection, unpinged
        _terminate(pid)
        with pytest.raises(DBAPIError) as failure:
            _backend_pid(engine)
        assert failure.value.connection_invalidated
        # The pool was invalidated: the next request gets a fresh connection.
        assert _backend_pid(engine) != pid
    finally:
        engine.dispose()
