"""The schema only changes through Alembic, and the migrations match the models."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from portal_backend.db import (
    alembic_config,
    downgrade_database,
    make_engine,
    upgrade_database,
)
from portal_backend.models import metadata
from portal_backend.settings import Settings
from tests.conftest import POSTGRES_URL, make_settings, table_names


def test_models_and_migrations_agree(migrated_settings: Settings) -> None:
    engine = make_engine(migrated_settings.database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree; write a migration for: {diff}"


def test_single_migration_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1, f"branched migrations: {script.get_heads()}"


def test_upgrade_downgrade_round_trip_on_postgresql(tmp_path) -> None:  # type: ignore[no-untyped-def]
    schema = "t_roundtrip_" + tmp_path.name[-8:].replace("-", "_").lower()
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        settings = make_settings("postgresql", tmp_path, schema)
        upgrade_database(settings)
        tables = table_names(settings)
        assert {t.name for t in metadata.sorted_tables} <= tables
        downgrade_database(settings, "base")
        assert table_names(settings) <= {"alembic_version"}
        upgrade_database(settings)
        assert {t.name for t in metadata.sorted_tables} <= table_names(settings)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
