"""The PostgreSQL ingest path's transaction: asynchronous commit limited to the batch's
own transaction, and driver errors surfacing as SQLAlchemy's (the push retries on
OperationalError) with nothing of the batch written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from portal_backend.db import make_engine, make_session_factory, session_scope, upgrade_database
from portal_backend.settings import Settings
from portal_backend.sla import ingest, stats
from portal_backend.sla.rollups import T
from portal_backend.sla.tables import IngestBatch
from tests.conftest import make_settings, truncate_all
from tests.sla.conftest import T0, rag_service, records, register


@pytest.fixture
def pg_settings(postgres_schema: str, tmp_path: Path) -> Settings:
    """PostgreSQL only: SQLite has no asynchronous commit (its path ignores the flag)."""
    settings = make_settings("postgresql", tmp_path, postgres_schema)
    upgrade_database(settings)
    truncate_all(settings)
    return settings


@pytest.fixture
def engine(pg_settings: Settings) -> Iterator[Engine]:
    engine = make_engine(pg_settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def ref(factory: sessionmaker[Session]) -> str:
    """One registered RAG service, the one every batch here is for."""
    (ref,) = register(factory, rag_service("bot"))
    return ref


def _batch(ref: str, batch_id: str) -> ingest.ParsedBatch:
    body = orjson.dumps(
        {"batch_id": batch_id, "records": records(ref, T0 - timedelta(minutes=5), 60, 40)}
    )
    return ingest.parse_batch(body)


def test_asynchronous_commit_applies_to_the_batch_transaction_only(
    engine: Engine, factory: sessionmaker[Session], ref: str
) -> None:
    with engine.connect() as connection:
        session = Session(bind=connection)
        result = ingest.ingest_batch(
            session, _batch(ref, "async-1"), now=T0, synchronous_commit=False
        )
        assert result.accepted == 40
        inside = session.execute(text("SHOW synchronous_commit")).scalar()
        session.commit()
        after = connection.exec_driver_sql("SHOW synchronous_commit").scalar()
        connection.commit()
        session.close()
    assert (inside, after) == ("off", "on")  # SET LOCAL: the pooled connection is unchanged

    with engine.connect() as connection:
        session = Session(bind=connection)
        ingest.ingest_batch(session, _batch(ref, "sync-1"), now=T0, synchronous_commit=True)
        assert session.execute(text("SHOW synchronous_commit")).scalar() == "on"
        session.commit()
        session.close()
    end = int(T0.timestamp())
    with session_scope(factory) as session:
        assert stats.window_stats(session, ref, end - 3600, end).requests == 80


def test_lock_timeout_is_an_operational_error_and_writes_nothing(
    engine: Engine, factory: sessionmaker[Session], ref: str
) -> None:
    with session_scope(factory) as session:
        ingest.ingest_batch(session, _batch(ref, "first"), now=T0)
    blocked_id = f"blocked-{uuid.uuid4().hex}"
    with engine.connect() as holder:
        # Another transaction holds the service's day row (every batch touches it).
        holder.execute(
            text(
                "SELECT 1 FROM sla_usage_rollups WHERE service_ref = :ref "
                "AND resolution = '1d' FOR UPDATE"
            ),
            {"ref": ref},
        )
        session = factory()
        session.execute(text("SET LOCAL lock_timeout = '200ms'"))
        with pytest.raises(OperationalError) as raised:
            ingest.ingest_batch(session, _batch(ref, blocked_id), now=T0)
        assert "lock timeout" in str(raised.value)
        session.rollback()
        session.close()
        holder.rollback()
    with session_scope(factory) as session:
        assert session.get(IngestBatch, blocked_id) is None  # the claim rolled back too
        day = session.execute(
            text(f"SELECT requests FROM {T.name} WHERE service_ref = :ref AND resolution = '1d'"),
            {"ref": ref},
        ).scalar()
        assert day == 40
    # The same batch goes through once the lock is gone (the push's retry).
    with session_scope(factory) as session:
        assert ingest.ingest_batch(session, _batch(ref, blocked_id), now=T0).accepted == 40


def test_a_dropped_connection_fails_the_batch_and_is_not_reused(
    engine: Engine, factory: sessionmaker[Session], ref: str
) -> None:
    session = factory()
    driver = session.connection().connection.driver_connection
    with engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": driver.info.backend_pid})
        other.commit()
    with pytest.raises(OperationalError):
        ingest.ingest_batch(session, _batch(ref, "dropped"), now=T0)
    session.rollback()
    session.close()
    # The retry gets a live connection and the batch counts once.
    with session_scope(factory) as session:
        assert ingest.ingest_batch(session, _batch(ref, "dropped"), now=T0).accepted == 40
    end = int(T0.timestamp())
    with session_scope(factory) as session:
        assert stats.window_stats(session, ref, end - 3600, end).requests == 40
