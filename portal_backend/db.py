"""Database engine, sessions and migrations; SQLite and PostgreSQL behave the same."""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from portal_backend.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = REPO_ROOT / "migrations"

# A pooled connection idle for longer than this is checked with a round trip before use.
PING_AFTER_IDLE_S = 10.0
# Connections are replaced after this long (server-side idle timeouts, failovers).
POOL_RECYCLE_S = 1800


def make_engine(database_url: str, *, ping_after_idle_s: float = PING_AFTER_IDLE_S) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(
            dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry
        ) -> None:
            # WAL lets readers proceed while a writer holds the lock (refresh during reads).
            cursor = dbapi_connection.cursor()
            # WAL is a property of the database file: set it once. Setting it again on
            # every connection fails at once with "database is locked" (no busy wait)
            # when another process holds a lock, e.g. two importers connecting together.
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    engine = create_engine(database_url, pool_size=10, max_overflow=20, pool_recycle=POOL_RECYCLE_S)
    _ping_idle_connections(engine, ping_after_idle_s)
    _share_disconnects(engine)
    return engine


# The PostgreSQL engines of this process (the app's, the scaffolder's catalog checks',
# ...), each with its own pool.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _share_disconnects(engine: Engine) -> None:
    """A statement that finds its connection gone (the server restarted) invalidates its
    own pool, so that engine's next requests reconnect; this tells the process's other
    engines on the same server too, so that each does not fail one more request on a
    connection it pooled before the restart (issue 22, tests/faults)."""
    _ENGINES.add(engine)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        if not context.is_disconnect:
            return
        for other in list(_ENGINES):
            if other is not engine and other.url == engine.url:
                other.dispose()  # drops its pooled connections; checked-out ones finish


def _ping_idle_connections(engine: Engine, after_s: float) -> None:
    """Check a pooled connection before use only when it sat idle for a while.

    ``pool_pre_ping`` pings on every checkout: one extra round trip per request (a
    by-name read is three: ping, query, commit). A connection in steady use cannot
    have gone stale unnoticed, so only one that waited in the pool longer than
    ``after_s`` (the case after a database restart in a quiet period) is pinged; a
    dead one is replaced transparently (the pool retries the checkout). A connection
    that dies while the pool is busy fails the one statement that meets it, and
    SQLAlchemy then invalidates the whole pool, so the following requests reconnect.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        _proxy: PoolProxiedConnection,
    ) -> None:
        idle_since = record.info.get("checked_in_at")
        if idle_since is None or time.monotonic() - idle_since < after_s:
            return  # new, or in recent use
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()
        except Exception as error:  # the driver's own "connection is gone" errors
            # The pool drops this connection and checks out (or opens) another.
            raise exc.DisconnectionError(f"stale pooled connection: {error}") from error


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's ini interpolation treats % specially.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    settings.ensure_dirs()
    command.upgrade(alembic_config(settings.database_url), revision)


def downgrade_database(settings: Settings, revision: str) -> None:
    command.downgrade(alembic_config(settings.database_url), revision)
